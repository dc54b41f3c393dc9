/* video_none.c - a petmatte built without FFmpeg's libraries: videos are refused
 * with a message that says how to get them. */
#include "cli.h"

int cli_is_video_name(const char *name) {
    static const char *const ext[] = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (cli_has_suffix_ci(name, ext[i])) return 1;
    return 0;
}

const char *cli_video_versions(void) { return NULL; }

int cli_video_remove(const cli_engine *engine, const cli_remove_request *req, const char *input) {
    (void)engine, (void)req;
    cli_error("%s: this petmatte was built without video support (FFmpeg's libavformat, libavcodec, "
              "libswscale, libswresample, libavutil were not found at build time)", input);
    return CLI_EXIT_FAILED;
}
