/* video_plan.c - which output a video gets (--video-format, the output's name, the
 * default next to the input) and the checks made before anything loads. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "video.h"

int cli_is_video_name(const char *name) {
    static const char *const ext[] = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts",
                                      ".mts", ".m2ts", ".flv", ".wmv", ".ogv", ".3gp", ".y4m", ".nut", ".mxf",
                                      ".vob", ".dv", ".asf"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (cli_has_suffix_ci(name, ext[i])) return 1;
    return 0;
}

static int parse_format(const char *s) {
    for (int f = CLI_VIDEO_WEBM; f <= CLI_VIDEO_PNG; f++)
        if (strcmp(s, cli_video_format_name(f)) == 0) return f;
    return -1;
}

/* The format an output name asks for, or -1. */
static int format_of_name(const char *path) {
    if (cli_has_suffix_ci(path, ".webm")) return CLI_VIDEO_WEBM;
    if (cli_has_suffix_ci(path, ".mov")) return CLI_VIDEO_MOV;
    if (cli_has_suffix_ci(path, ".mp4") || cli_has_suffix_ci(path, ".m4v")) return CLI_VIDEO_MP4;
    return -1;
}

int cli_video_plan_output(const cli_remove_request *req, const char *input, const struct stat *in_st,
                       video_plan *vp) {
    const char *cmd = "remove";
    vp->kind = req->opt.output; /* RGBA, MASK, COMPOSITE (any background) or OVERLAY */
    int asked = -1;
    if (req->video_format && (asked = parse_format(req->video_format)) < 0)
        return cli_usage(cmd, "--video-format '%s' is not one of webm, mov, mp4, png", req->video_format);
    /* Alpha needs WebM or MOV; a composite or a mask plays everywhere as MP4. */
    int fallback = vp->kind == PM_OUTPUT_RGBA ? CLI_VIDEO_WEBM : CLI_VIDEO_MP4;
    const char *label = req->mask ? "mask" : "cutout";
    char *stem = cli_stem(input);
    if (!stem) return cli_error("out of memory"), CLI_EXIT_FAILED;
    char name[PATH_MAX];
    struct stat st;
    if (req->output && strcmp(req->output, "-") == 0) {
        free(stem);
        return cli_usage(cmd, "a video cannot be written to stdout; give -o FILE (.webm, .mov, .mp4), or "
                         "pipe raw frames with 'petmatte frames'");
    }
    if (req->output && asked == CLI_VIDEO_PNG) {
        vp->format = CLI_VIDEO_PNG;
        vp->out = strdup(req->output);
    } else if (req->output && stat(req->output, &st) == 0 && S_ISDIR(st.st_mode)) {
        vp->format = asked >= 0 ? asked : fallback;
        snprintf(name, sizeof name, "%s.%s", stem, cli_video_format_name(vp->format));
        vp->out = cli_join(req->output, name);
    } else if (req->output) {
        int by_name = format_of_name(req->output);
        if (by_name < 0) {
            free(stem);
            return cli_usage(cmd, "video output '%s' must end in .webm, .mov or .mp4 (or be a folder with "
                             "--video-format png)", req->output);
        }
        if (asked >= 0 && asked != by_name) {
            free(stem);
            return cli_usage(cmd, "--video-format %s and the output name '%s' disagree", req->video_format,
                             req->output);
        }
        vp->format = by_name;
        vp->out = strdup(req->output);
    } else {
        vp->format = asked >= 0 ? asked : fallback;
        char *dir = cli_dirname(input);
        if (vp->format == CLI_VIDEO_PNG)
            snprintf(name, sizeof name, "%s.%s", stem, label);
        else
            snprintf(name, sizeof name, "%s.%s.%s", stem, label, cli_video_format_name(vp->format));
        vp->out = dir ? cli_join(dir, name) : NULL;
        free(dir);
    }
    free(stem);
    if (!vp->out) return cli_error("out of memory"), CLI_EXIT_FAILED;
    if (vp->format == CLI_VIDEO_MP4 && vp->kind == PM_OUTPUT_RGBA)
        return cli_usage(cmd, "H.264 MP4 has no alpha channel: write .webm or .mov to keep it, or give a "
                         "background (--bg, --bg-image, --overlay) or --mask");
    if (vp->format == CLI_VIDEO_PNG) {
        if (stat(vp->out, &st) == 0 && !S_ISDIR(st.st_mode))
            return cli_usage(cmd, "--video-format png writes a folder of frames; '%s' is a file", vp->out);
        return CLI_EXIT_OK;
    }
    char *dir = cli_dirname(vp->out);
    if (!dir) return cli_error("out of memory"), CLI_EXIT_FAILED;
    int dir_ok = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (!dir_ok) {
        int rc = cli_usage(cmd, "output folder '%s' does not exist", dir);
        free(dir);
        return rc;
    }
    free(dir);
    if (stat(vp->out, &st) == 0 && st.st_dev == in_st->st_dev && st.st_ino == in_st->st_ino)
        return cli_usage(cmd, "output '%s' is the same file as the input %s; petmatte never overwrites an input",
                         vp->out, input);
    return CLI_EXIT_OK;
}
