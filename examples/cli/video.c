/* video.c - `petmatte remove VIDEO`: every frame cut out, into a video that keeps
 * alpha (WebM VP9, MOV ProRes 4444), a composite or mask video (H.264 MP4, or the
 * same containers without alpha), or a folder of numbered PNGs.
 *
 * Order of work, as for images: plan the output and refuse mistakes (video_plan.c),
 * open the input
 * (a file FFmpeg cannot read fails before the model loads), load the model, then
 * stream: decode a frame, convert it to RGB, hand it to the pipeline (worker threads
 * calling pm_remove_bg), and encode the results in order. Memory does not grow with
 * the clip. On a damaged input or a signal the frames before it are finished into a
 * complete file. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>

#include "video.h"

const char *cli_video_versions(void) {
    static char text[96];
    unsigned f = avformat_version(), c = avcodec_version();
    snprintf(text, sizeof text, "libavformat %u.%u.%u, libavcodec %u.%u.%u", f >> 16, (f >> 8) & 255, f & 255,
             c >> 16, (c >> 8) & 255, c & 255);
    return text;
}

/* ------------------------------------------------------------------ input */

typedef struct video_in {
    AVFormatContext *fmt;
    AVCodecContext *dec;
    int vidx, aidx;
    AVPacket *pkt;
    AVFrame *frame;
    struct SwsContext *sws;
    int cs, full_range;  /* the matrix and range sws was set up for */
    int64_t declared;  /* frames the container lists; 0 when it does not say */
    int exact_count;   /* declared is the sample table's exact count (MP4, MOV) */
    int64_t discarded; /* packets an edit list cuts (decoded, never shown) */
    size_t expected;   /* for the progress bar; 0 when unknown */
} video_in;

static void video_in_free(video_in *in) {
    avcodec_free_context(&in->dec);
    avformat_close_input(&in->fmt);
    av_packet_free(&in->pkt);
    av_frame_free(&in->frame);
    sws_freeContext(in->sws);
}

static int video_in_open(video_in *in, const char *path, char *err, size_t errcap) {
    memset(in, 0, sizeof *in);
    in->aidx = -1;
    char buf[128];
    int rc = avformat_open_input(&in->fmt, path, NULL, NULL);
    if (rc < 0) return snprintf(err, errcap, "cannot open as a video: %s", cli_av_err(rc, buf, sizeof buf)), -1;
    if ((rc = avformat_find_stream_info(in->fmt, NULL)) < 0)
        return snprintf(err, errcap, "cannot read its streams: %s", cli_av_err(rc, buf, sizeof buf)), -1;
    const AVCodec *codec = NULL;
    in->vidx = av_find_best_stream(in->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (in->vidx < 0 || !codec)
        return snprintf(err, errcap, in->vidx == AVERROR_DECODER_NOT_FOUND ? "no decoder for its video stream"
                                                                           : "no video stream"),
               -1;
    in->aidx = av_find_best_stream(in->fmt, AVMEDIA_TYPE_AUDIO, -1, in->vidx, NULL, 0);
    if (in->aidx < 0) in->aidx = -1;
    AVStream *vs = in->fmt->streams[in->vidx];
    if (!(in->dec = avcodec_alloc_context3(codec)) || !(in->pkt = av_packet_alloc()) ||
        !(in->frame = av_frame_alloc()))
        return snprintf(err, errcap, "out of memory"), -1;
    if ((rc = avcodec_parameters_to_context(in->dec, vs->codecpar)) < 0)
        return snprintf(err, errcap, "%s", cli_av_err(rc, buf, sizeof buf)), -1;
    in->dec->pkt_timebase = vs->time_base;
    in->dec->thread_count = 0; /* FFmpeg picks */
    if ((rc = avcodec_open2(in->dec, codec, NULL)) < 0)
        return snprintf(err, errcap, "cannot open its %s decoder: %s", codec->name, cli_av_err(rc, buf, sizeof buf)),
               -1;
    if (in->dec->width <= 0 || in->dec->height <= 0)
        return snprintf(err, errcap, "its video stream has no frame size"), -1;
    in->declared = vs->nb_frames > 0 ? vs->nb_frames : 0;
    /* MP4 and MOV count every sample in their index; other containers' counts (AVI's
     * header) may be wrong in files that play fine, so only these prove a cut. */
    in->exact_count = strstr(in->fmt->iformat->name, "mp4") != NULL;
    AVRational fr = av_guess_frame_rate(in->fmt, vs, NULL);
    if (in->declared)
        in->expected = (size_t)in->declared; /* an edit list may show fewer */
    else if (fr.num > 0 && fr.den > 0 && in->fmt->duration > 0)
        in->expected = (size_t)av_rescale_q(in->fmt->duration, AV_TIME_BASE_Q, av_inv_q(fr));
    return 0;
}

/* ------------------------------------------------------------------ output */

typedef struct video_run {
    video_plan plan;
    cli_vout *vout;          /* a video file; NULL for PNG frames */
    char tmp[PATH_MAX + 64]; /* the video file as it is written, renamed at the end */
    pm_remove_options opt;
    cli_progress bar;
    double last_draw;        /* the bar is redrawn at most 10 times a second */
} video_run;

static int sink_frame(void *user, uint64_t number, int64_t tag, const pm_output *out, char *err, size_t errcap) {
    video_run *r = user;
    int rc;
    if (r->vout) {
        rc = cli_vout_frame(r->vout, out, tag, err, errcap);
    } else {
        char name[32];
        snprintf(name, sizeof name, "%06llu.png", (unsigned long long)number);
        char *path = cli_join(r->plan.out, name);
        if (!path) return snprintf(err, errcap, "out of memory"), -1;
        rc = cli_write_atomic(path, out->data, out->size, err, errcap);
        free(path);
    }
    double now = cli_now();
    if (number == 1 || now - r->last_draw >= 0.1) {
        cli_progress_draw(&r->bar, (size_t)number, 0, NULL);
        r->last_draw = now;
    }
    return rc;
}

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

/* SA_RESETHAND: a second Ctrl-C ends the process at once. */
static void install_stop_handlers(void) { cli_on_stop_signals(on_stop, (int)SA_RESETHAND, 1); }

/* Where the video is written until it is complete: a hidden file in its folder. */
static int open_tmp(video_run *r, char *err, size_t errcap) {
    char *dir = cli_dirname(r->plan.out);
    const char *base = strrchr(r->plan.out, '/');
    base = base ? base + 1 : r->plan.out;
    if (!dir) return snprintf(err, errcap, "out of memory"), -1;
    snprintf(r->tmp, sizeof r->tmp, "%s/.%s.petmatte-XXXXXX", dir, base);
    free(dir);
    int fd = mkstemp(r->tmp);
    if (fd < 0) {
        snprintf(err, errcap, "cannot write in the folder of %s: %s", r->plan.out, strerror(errno));
        r->tmp[0] = '\0';
        return -1;
    }
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    close(fd);
    return 0;
}

/* ------------------------------------------------------------------ the loop */

typedef struct loop_state {
    video_in *in;
    cli_pipe *pipe;
    uint64_t decoded;
    int width, height;
    char err[1024]; /* "frame N: why" of the first failure */
} loop_state;

/* Converts one decoded frame to RGB and queues it. 0, or -1 with st->err set. */
static int queue_frame(loop_state *st, AVFrame *f) {
    uint64_t number = st->decoded + 1;
    if (f->decode_error_flags || (f->flags & AV_FRAME_FLAG_CORRUPT)) {
        snprintf(st->err, sizeof st->err, "frame %llu: damaged (the input is corrupt or truncated)",
                 (unsigned long long)number);
        return -1;
    }
    if (f->width != st->width || f->height != st->height) {
        snprintf(st->err, sizeof st->err, "frame %llu: its size %dx%d differs from the first frame's %dx%d",
                 (unsigned long long)number, f->width, f->height, st->width, st->height);
        return -1;
    }
    struct SwsContext *before = st->in->sws;
    st->in->sws = sws_getCachedContext(st->in->sws, f->width, f->height, f->format, st->width, st->height,
                                       AV_PIX_FMT_RGB24, SWS_BICUBIC, NULL, NULL, NULL);
    if (!st->in->sws) {
        snprintf(st->err, sizeof st->err, "frame %llu: no conversion from %s to RGB", (unsigned long long)number,
                 av_get_pix_fmt_name(f->format));
        return -1;
    }
    /* The input's own matrix and range, so colours reach the model as they look. */
    int cs = f->colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : (int)f->colorspace;
    int full = f->color_range == AVCOL_RANGE_JPEG;
    if (st->in->sws != before || cs != st->in->cs || full != st->in->full_range) {
        sws_setColorspaceDetails(st->in->sws, sws_getCoefficients(cs), full, sws_getCoefficients(SWS_CS_DEFAULT), 1,
                                 0, 1 << 16, 1 << 16);
        st->in->cs = cs;
        st->in->full_range = full;
    }
    unsigned char *buf = cli_pipe_next(st->pipe);
    if (!buf) {
        snprintf(st->err, sizeof st->err, "%s", cli_pipe_error(st->pipe));
        return -1;
    }
    uint8_t *dst[4] = {buf, NULL, NULL, NULL};
    int dst_stride[4] = {st->width * 3, 0, 0, 0};
    sws_scale(st->in->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, dst_stride);
    st->decoded++;
    if (cli_pipe_submit(st->pipe, PM_FORMAT_RGB, st->width, st->height, (size_t)st->width * 3,
                        f->best_effort_timestamp) != 0) {
        snprintf(st->err, sizeof st->err, "%s", cli_pipe_error(st->pipe));
        return -1;
    }
    return 0;
}

static int receive_frames(loop_state *st) {
    char buf[128];
    for (;;) {
        if (stop_signal) return 0;
        int rc = avcodec_receive_frame(st->in->dec, st->in->frame);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return 0;
        if (rc < 0) {
            snprintf(st->err, sizeof st->err, "frame %llu: cannot decode: %s", (unsigned long long)st->decoded + 1,
                     cli_av_err(rc, buf, sizeof buf));
            return -1;
        }
        rc = queue_frame(st, st->in->frame);
        av_frame_unref(st->in->frame);
        if (rc != 0) return -1;
    }
}

/* Reads, decodes and queues every frame; audio goes straight to the output. */
static int decode_all(loop_state *st, cli_vout *vout) {
    video_in *in = st->in;
    char buf[128], why[512];
    for (;;) {
        if (stop_signal) return 0;
        int rc = av_read_frame(in->fmt, in->pkt);
        if (rc == AVERROR_EOF) break;
        if (rc < 0) {
            snprintf(st->err, sizeof st->err, "frame %llu: cannot read: %s", (unsigned long long)st->decoded + 1,
                     cli_av_err(rc, buf, sizeof buf));
            return -1;
        }
        if (in->pkt->stream_index == in->vidx) {
            if (in->pkt->flags & AV_PKT_FLAG_DISCARD) in->discarded++;
            rc = avcodec_send_packet(in->dec, in->pkt);
            av_packet_unref(in->pkt);
            if (rc < 0 && rc != AVERROR(EAGAIN)) {
                snprintf(st->err, sizeof st->err, "frame %llu: cannot decode: %s",
                         (unsigned long long)st->decoded + 1, cli_av_err(rc, buf, sizeof buf));
                return -1;
            }
            if (receive_frames(st) != 0) return -1;
        } else if (in->pkt->stream_index == in->aidx && vout) {
            rc = cli_vout_audio(vout, in->pkt, why, sizeof why);
            av_packet_unref(in->pkt);
            if (rc != 0) {
                snprintf(st->err, sizeof st->err, "%s", why);
                return -1;
            }
        } else {
            av_packet_unref(in->pkt);
        }
    }
    avcodec_send_packet(in->dec, NULL);
    if (receive_frames(st) != 0) return -1;
    if (!stop_signal && in->exact_count && in->declared > 0 &&
        st->decoded + (uint64_t)in->discarded < (uint64_t)in->declared) {
        snprintf(st->err, sizeof st->err,
                 "frame %llu: missing: the input ends after %llu of the %lld frames its container lists "
                 "(truncated?)",
                 (unsigned long long)st->decoded + 1, (unsigned long long)st->decoded, (long long)in->declared);
        return -1;
    }
    return 0;
}

static int load_model(pm_ctx *ctx, const char *model_path, int quiet) {
    if (pm_warmup(ctx) != PM_OK) {
        cli_error("cannot load %s: %s", model_path, pm_errmsg(ctx));
        return CLI_EXIT_MODEL;
    }
    pm_status_info st;
    pm_status_info_init(&st);
    if (!quiet && pm_status(ctx, &st) == PM_OK && st.random_weights)
        cli_error("note: model '%s' has random weights (a test model); its cut-outs are meaningless", st.model_name);
    return CLI_EXIT_OK;
}

int cli_video_remove(const cli_engine *engine, const cli_remove_request *req, const char *input) {
    struct stat in_st;
    if (stat(input, &in_st) != 0) return cli_usage("remove", "cannot read '%s': %s", input, strerror(errno));
    video_run r;
    memset(&r, 0, sizeof r);
    int rc = cli_video_plan_output(req, input, &in_st, &r.plan);
    if (rc != CLI_EXIT_OK) {
        free(r.plan.out);
        return rc;
    }
    /* FFmpeg's own log lines (encoder banners, decoder complaints) would break the
     * one-line-per-error promise of this tool; its errors reach the user through the
     * return codes, in petmatte's words. */
    av_log_set_level(AV_LOG_QUIET);
    char err[1024], note[256];
    video_in in;
    if (video_in_open(&in, input, err, sizeof err) != 0) {
        cli_error("%s: %s", input, err);
        video_in_free(&in);
        free(r.plan.out);
        return CLI_EXIT_FAILED;
    }
    AVStream *vs = in.fmt->streams[in.vidx];
    int width = in.dec->width, height = in.dec->height;
    pm_params defaults;
    pm_params_init(&defaults);
    if ((uint64_t)width * (uint64_t)height > defaults.max_pixels) {
        cli_error("%s: %dx%d frames are over the limit of %llu pixels", input, width, height,
                  (unsigned long long)defaults.max_pixels);
        video_in_free(&in);
        free(r.plan.out);
        return CLI_EXIT_FAILED;
    }

    pm_ctx *ctx = NULL;
    char model_path[PATH_MAX];
    rc = cli_open(engine, "remove", &ctx, model_path, sizeof model_path);
    if (rc == CLI_EXIT_OK) rc = load_model(ctx, model_path, req->quiet);
    if (rc != CLI_EXIT_OK) {
        pm_close(ctx);
        video_in_free(&in);
        free(r.plan.out);
        return rc;
    }

    r.opt = req->opt;
    r.opt.encoding = r.plan.format == CLI_VIDEO_PNG ? PM_ENCODING_PNG : PM_ENCODING_RAW;
    int opened;
    if (r.plan.format == CLI_VIDEO_PNG) {
        opened = cli_mkdir_p(r.plan.out, err, sizeof err) == 0;
        if (opened && in.aidx >= 0 && !req->quiet)
            cli_error("note: %s: the audio is not kept in PNG frames", input);
    } else {
        size_t matrix_size = 0;
        const uint8_t *matrix = av_stream_get_side_data(vs, AV_PKT_DATA_DISPLAYMATRIX, &matrix_size);
        cli_vout_spec spec = {r.tmp, r.plan.format, r.plan.kind, width, height, vs->time_base,
                              av_guess_frame_rate(in.fmt, vs, NULL),
                              matrix_size >= 9 * sizeof(int32_t) ? matrix : NULL};
        opened = open_tmp(&r, err, sizeof err) == 0 &&
                 cli_vout_open(&r.vout, &spec, in.aidx >= 0 ? in.fmt->streams[in.aidx] : NULL, note, sizeof note,
                               err, sizeof err) == 0;
        if (opened && note[0] && !req->quiet) cli_error("note: %s", note);
    }
    cli_pipe *pipe = NULL;
    if (opened) {
        size_t frame_bytes = (size_t)width * (size_t)height * 3;
        pipe = cli_pipe_new(ctx, &r.opt, cli_frames_in_flight(ctx), frame_bytes, sink_frame, &r);
        if (!pipe) snprintf(err, sizeof err, "out of memory");
    }
    if (!pipe) {
        cli_error("%s: %s", r.plan.out, err);
        cli_vout_free(r.vout);
        if (r.tmp[0]) unlink(r.tmp);
        pm_close(ctx);
        video_in_free(&in);
        free(r.plan.out);
        return CLI_EXIT_FAILED;
    }

    stop_signal = 0;
    install_stop_handlers();
    cli_progress_init_frames(&r.bar, in.expected, !req->quiet && isatty(STDERR_FILENO));
    loop_state st = {&in, pipe, 0, width, height, ""};
    int failed = decode_all(&st, r.vout) != 0;
    /* The frames before a failure are still finished and written. A frame the model
     * failed on comes before any the decoder failed on: its message wins. */
    if (cli_pipe_finish(pipe) != 0) {
        snprintf(st.err, sizeof st.err, "%s", cli_pipe_error(pipe));
        failed = 1;
    }
    uint64_t written = cli_pipe_written(pipe);
    cli_pipe_free(pipe);
    if (written) cli_progress_draw(&r.bar, (size_t)written, 0, NULL);
    cli_progress_end(&r.bar);
    if (r.vout) {
        if (written > 0 && cli_vout_close(r.vout, err, sizeof err) != 0) {
            cli_error("%s: %s", r.plan.out, err);
            written = 0;
            failed = 1;
        }
        cli_vout_free(r.vout);
        if (written > 0 && rename(r.tmp, r.plan.out) != 0) {
            cli_error("cannot write %s: %s", r.plan.out, strerror(errno));
            written = 0;
            failed = 1;
        }
        if (written == 0) unlink(r.tmp);
    }
    const char *what = r.plan.format == CLI_VIDEO_PNG ? "PNG frames in" : "";
    if (stop_signal && written == 0) {
        cli_error("%s: stopped by signal %d before any frame was done; nothing was written", input, (int)stop_signal);
        failed = 1;
    } else if (stop_signal) {
        cli_error("%s: stopped by signal %d after %llu frames; they are in %s%s%s", input, (int)stop_signal,
                  (unsigned long long)written, what, *what ? " " : "", r.plan.out);
        failed = 1;
    } else if (failed && written > 0) {
        cli_error("%s: %s; the %llu frames before it are in %s%s%s", input, st.err, (unsigned long long)written,
                  what, *what ? " " : "", r.plan.out);
    } else if (failed) {
        cli_error("%s: %s; nothing was written", input, st.err);
    } else if (written == 0) {
        cli_error("%s: no video frames; nothing was written", input);
        failed = 1;
    } else if (!req->quiet && isatty(STDERR_FILENO)) {
        fprintf(stderr, "%s: %llu frames written to %s in %.1f s\n", CLI_NAME, (unsigned long long)written,
                r.plan.out, cli_now() - r.bar.t0);
    }
    pm_close(ctx);
    video_in_free(&in);
    free(r.plan.out);
    return failed ? CLI_EXIT_FAILED : CLI_EXIT_OK;
}
