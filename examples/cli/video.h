/*
 * video.h - what the video files of petmatte share (FFmpeg's libraries).
 *
 * video.c        `petmatte remove VIDEO`: decoding, the frame loop
 * video_plan.c   which output a video gets, and the checks made before the model loads
 * video_out.c    the output file: the video encoder, the muxer, the audio stream
 * video_audio.c  audio re-encoding for a container that cannot take the input's codec
 */
#ifndef PETMATTE_CLI_VIDEO_H
#define PETMATTE_CLI_VIDEO_H

#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#include "cli.h"

/* The kinds of video output (--video-format). */
typedef enum cli_video_format {
    CLI_VIDEO_WEBM = 0, /* VP9 (libvpx-vp9) in WebM: yuva420p keeps alpha */
    CLI_VIDEO_MOV,      /* ProRes 4444 (prores_ks) in QuickTime: yuva444p10le keeps alpha */
    CLI_VIDEO_MP4,      /* H.264 (libx264) in MP4: no alpha (composites and masks) */
    CLI_VIDEO_PNG       /* a folder of numbered PNGs: 000001.png, ... */
} cli_video_format;

/* "webm", "mov", "mp4", "png". */
const char *cli_video_format_name(int format);

/* What one video becomes. */
typedef struct video_plan {
    int format; /* cli_video_format */
    int kind;   /* pm_output_kind */
    char *out;  /* the file, or the folder of PNG frames; malloc'd */
} video_plan;

/* Picks the format and the output path of input (whose stat is in_st) from remove's
 * options; refuses what cannot work (an RGBA MP4, an unknown extension, stdout, a
 * missing folder, the input itself) with a usage error, printed and returned. */
int cli_video_plan_output(const cli_remove_request *req, const char *input, const struct stat *in_st,
                          video_plan *vp);

/* The output's video settings. */
typedef struct cli_vout_spec {
    const char *path;
    int format;            /* cli_video_format, not PNG */
    int kind;              /* pm_output_kind of the frames given */
    int width, height;
    AVRational time_base;  /* of the timestamps given (the input stream's) */
    AVRational frame_rate; /* nominal; {0, 1} when unknown */
    const uint8_t *display_matrix; /* the input's rotation (9 int32), kept; NULL: none */
} cli_vout_spec;

typedef struct cli_vout cli_vout;

/* Opens path for writing and writes its header. audio_in: the input's audio stream
 * to keep (copied when the container takes its codec, else re-encoded), or NULL.
 * *note gets a line to show the user (e.g. "audio re-encoded to opus") or "". */
int cli_vout_open(cli_vout **out, const cli_vout_spec *spec, const AVStream *audio_in, char *note,
                  size_t notecap, char *err, size_t errcap);
/* An audio packet of audio_in (in its time base). */
int cli_vout_audio(cli_vout *v, AVPacket *pkt, char *err, size_t errcap);
/* One cut-out frame (RAW pm_output) at pts (spec->time_base). */
int cli_vout_frame(cli_vout *v, const pm_output *px, int64_t pts, char *err, size_t errcap);
/* Flushes the encoders and writes the trailer: the file is complete and valid. */
int cli_vout_close(cli_vout *v, char *err, size_t errcap);
/* Frees everything; a file not closed is left as it is. */
void cli_vout_free(cli_vout *v);

/* Audio re-encoding (video_audio.c). */
typedef struct cli_areenc cli_areenc;
/* Opens a decoder for in and an encoder for codec id, adds its stream to fmt (before
 * the header). */
int cli_areenc_open(cli_areenc **out, AVFormatContext *fmt, const AVStream *in, enum AVCodecID id, char *err,
                    size_t errcap);
/* Decodes pkt, converts and encodes what is ready, writing packets to fmt. */
int cli_areenc_packet(cli_areenc *a, AVFormatContext *fmt, AVPacket *pkt, char *err, size_t errcap);
/* Encodes what is left (padding the last frame with silence where needed). */
int cli_areenc_flush(cli_areenc *a, AVFormatContext *fmt, char *err, size_t errcap);
const char *cli_areenc_codec_name(const cli_areenc *a);
void cli_areenc_free(cli_areenc *a);

/* FFmpeg's message for an error code. */
const char *cli_av_err(int code, char *buf, size_t cap);

#endif /* PETMATTE_CLI_VIDEO_H */
