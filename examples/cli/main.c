/* main.c - petmatte: remove image backgrounds from the command line with libpetmatte.
 *
 *   petmatte remove IN [-o OUT]        a file, several files, a folder, - (stdin), or a video
 *   petmatte frames --size WxH         raw RGB frames on stdin to cut-outs on stdout
 *   petmatte warmup                    load and warm the model, timing each phase
 *   petmatte info                      model, device and versions
 *
 * See `petmatte --help` and docs/cli.md. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char main_help[] =
    "Usage: petmatte COMMAND [OPTIONS] [ARGS]\n"
    "\n"
    "Removes image backgrounds with libpetmatte (a TorchScript matting model).\n"
    "\n"
    "Commands:\n"
    "  remove IN [-o OUT]     cut out a file, a folder (-o OUTDIR) or stdin (-) to PNG or WebP,\n"
    "                         or a video to WebM/MOV with alpha, MP4, or PNG frames\n"
    "  frames --size WxH      raw RGB24 frames on stdin to RGBA (or mask) frames on stdout\n"
    "  warmup                 load and warm the model, printing each phase and its time\n"
    "  info                   print the model's manifest, the device and the versions\n"
    "  help [COMMAND]         this help, or a command's help (same as COMMAND --help)\n"
    "\n"
    "Options:\n"
    "  -h, --help             this help\n"
    "  -V, --version          print the version and exit\n"
    "\n"
    "Examples:\n"
    "  petmatte remove cat.jpg                    writes cat.cutout.png next to cat.jpg\n"
    "  petmatte remove cat.jpg -o out.png --bg white\n"
    "  petmatte remove photos/ -o cutouts/ --device cuda:0\n"
    "  petmatte remove photos/ -o cutouts/ --watch   (cut out new images until Ctrl-C)\n"
    "  petmatte remove clip.mp4                   writes clip.cutout.webm (VP9 with alpha)\n"
    "  petmatte remove clip.mp4 -o green.mp4 --bg green\n"
    "  curl -s URL | petmatte remove - --mask > mask.png\n"
    "  petmatte warmup --device cuda:0 --json\n"
    "  petmatte warmup --device cuda:0 --tune cuda_graph=off --tune warmup_max_runs=40\n"
    "\n"
    "Model: --model PATH; else $PETMATTE_MODEL; else isnet-general.pt from models/ of the\n"
    "source tree (when run from its build folder) or from <prefix>/share/petmatte/models/.\n"
    "Make it with '/usr/bin/python3 tools/setup_default_model.py' in the source tree.\n"
    "\n"
    "Tuning: --tune KEY=VALUE (repeatable, every command) sets one of the library's\n"
    "tuning keys before warm-up; 'petmatte COMMAND --help' lists them.\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  one or more images failed (each reported on stderr; the others were written),\n"
    "     or a video or raw frames broke off (the frames before it were written)\n"
    "  2  usage error: bad option or value, missing input, an output that would\n"
    "     overwrite an input (nothing was done)\n"
    "  3  model or device error: no model found, model unreadable or invalid, device\n"
    "     not available, warm-up failed\n"
    "Errors are printed on stderr, one line each, starting with 'petmatte: '.\n";

static void print_version(void) {
    const char *video = cli_video_versions();
    printf("petmatte %s (libpetmatte %s; video: %s)\n", PETMATTE_VERSION_STRING, pm_version(),
           video ? video : "not built in");
}

static int dispatch(const char *cmd, int argc, char **argv) {
    if (strcmp(cmd, "remove") == 0) return cli_cmd_remove(argc, argv);
    if (strcmp(cmd, "warmup") == 0) return cli_cmd_warmup(argc, argv);
    if (strcmp(cmd, "info") == 0) return cli_cmd_info(argc, argv);
    if (strcmp(cmd, "frames") == 0) return cli_cmd_frames(argc, argv);
    return cli_usage(NULL, "unknown command '%s'; commands are remove, frames, warmup, info", cmd);
}

int main(int argc, char **argv) {
    cli_set_argv0(argc > 0 ? argv[0] : NULL);
    if (argc < 2) return cli_usage(NULL, "no command: give remove, frames, warmup or info");
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        fputs(main_help, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        print_version();
        return CLI_EXIT_OK;
    }
    if (strcmp(cmd, "help") == 0) {
        if (argc < 3) {
            fputs(main_help, stdout);
            return CLI_EXIT_OK;
        }
        char help_arg[] = "--help";
        char *args[] = {help_arg, NULL};
        return dispatch(argv[2], 1, args);
    }
    if (cmd[0] == '-') return cli_usage(NULL, "unknown option '%s'; give a command first", cmd);
    return dispatch(cmd, argc - 2, argv + 2);
}
