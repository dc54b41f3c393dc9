/* video_out.c - the output video: cut-out frames converted and encoded, the input's
 * audio copied (or re-encoded where the container cannot take it), then the trailer,
 * so that the file is complete even when the input ended early. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include "video.h"

struct cli_vout {
    AVFormatContext *fmt;
    AVCodecContext *enc;
    AVStream *vst;
    struct SwsContext *sws;
    enum AVPixelFormat src_fmt;
    AVFrame *frame;
    AVPacket *pkt;
    int64_t last_pts;
    /* audio: copied packets (ast, in_tb) or a re-encoder */
    AVStream *ast;
    AVRational audio_in_tb;
    cli_areenc *areenc;
    int header_written;
};

const char *cli_av_err(int code, char *buf, size_t cap) {
    if (av_strerror(code, buf, cap) < 0) snprintf(buf, cap, "error %d", code);
    return buf;
}

const char *cli_video_format_name(int format) {
    static const char *const names[] = {"webm", "mov", "mp4", "png"};
    return format >= 0 && format <= CLI_VIDEO_PNG ? names[format] : "?";
}

static int av_fail(char *err, size_t errcap, const char *what, int code) {
    char buf[128];
    snprintf(err, errcap, "%s: %s", what, cli_av_err(code, buf, sizeof buf));
    return -1;
}

/* Encoder, pixel format and settings for a format and frame kind. */
static int setup_encoder(cli_vout *v, const cli_vout_spec *s, char *err, size_t errcap) {
    const char *name = s->format == CLI_VIDEO_WEBM ? "libvpx-vp9" : s->format == CLI_VIDEO_MOV ? "prores_ks" : "libx264";
    const AVCodec *codec = avcodec_find_encoder_by_name(name);
    if (!codec) {
        snprintf(err, errcap, "this FFmpeg has no %s encoder (needed for %s output)", name,
                 cli_video_format_name(s->format));
        return -1;
    }
    int alpha = s->kind == PM_OUTPUT_RGBA;
    if (s->format == CLI_VIDEO_MP4 && alpha) {
        snprintf(err, errcap, "H.264 (MP4) has no alpha channel");
        return -1;
    }
    if (s->format == CLI_VIDEO_MP4 && (s->width % 2 || s->height % 2)) {
        snprintf(err, errcap, "H.264 (MP4) output needs an even width and height, not %dx%d; write WebM, "
                 "MOV or PNG frames instead", s->width, s->height);
        return -1;
    }
    if (!(v->enc = avcodec_alloc_context3(codec))) return snprintf(err, errcap, "out of memory"), -1;
    AVCodecContext *e = v->enc;
    e->width = s->width;
    e->height = s->height;
    e->time_base = s->time_base;
    e->framerate = s->frame_rate;
    e->sample_aspect_ratio = (AVRational){1, 1};
    e->thread_count = 0; /* the encoder picks (FFmpeg's default is one thread) */
    /* The frames are converted with swscale's default BT.601 limited-range matrix; say so. */
    e->colorspace = AVCOL_SPC_SMPTE170M;
    e->color_range = AVCOL_RANGE_MPEG;
    if (s->format == CLI_VIDEO_WEBM) {
        e->pix_fmt = alpha ? AV_PIX_FMT_YUVA420P : AV_PIX_FMT_YUV420P;
        e->bit_rate = 0;
        av_opt_set_int(e->priv_data, "crf", 20, 0);
        av_opt_set(e->priv_data, "deadline", "good", 0);
        av_opt_set_int(e->priv_data, "cpu-used", 4, 0);
        av_opt_set_int(e->priv_data, "row-mt", 1, 0);
    } else if (s->format == CLI_VIDEO_MOV) {
        e->pix_fmt = alpha ? AV_PIX_FMT_YUVA444P10LE : AV_PIX_FMT_YUV422P10LE;
        av_opt_set(e->priv_data, "profile", alpha ? "4444" : "hq", 0);
    } else {
        e->pix_fmt = AV_PIX_FMT_YUV420P;
        av_opt_set_int(e->priv_data, "crf", 18, 0);
        av_opt_set(e->priv_data, "preset", "fast", 0);
    }
    if (v->fmt->oformat->flags & AVFMT_GLOBALHEADER) e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    int rc = avcodec_open2(e, codec, NULL);
    if (rc < 0) return av_fail(err, errcap, name, rc);
    v->src_fmt = s->kind == PM_OUTPUT_MASK ? AV_PIX_FMT_GRAY8 : alpha ? AV_PIX_FMT_RGBA : AV_PIX_FMT_RGB24;
    v->sws = sws_getContext(s->width, s->height, v->src_fmt, s->width, s->height, e->pix_fmt, SWS_BICUBIC, NULL,
                            NULL, NULL);
    if (!v->sws) return snprintf(err, errcap, "no conversion to %s", av_get_pix_fmt_name(e->pix_fmt)), -1;
    if (!(v->frame = av_frame_alloc()) || !(v->pkt = av_packet_alloc()))
        return snprintf(err, errcap, "out of memory"), -1;
    v->frame->format = e->pix_fmt;
    v->frame->width = e->width;
    v->frame->height = e->height;
    if ((rc = av_frame_get_buffer(v->frame, 0)) < 0) return av_fail(err, errcap, "frame", rc);
    return 0;
}

/* The input's audio: copied when the container takes its codec, else re-encoded to
 * the container's own audio codec. */
static int setup_audio(cli_vout *v, const AVStream *in, char *note, size_t notecap, char *err, size_t errcap) {
    enum AVCodecID id = in->codecpar->codec_id;
    if (avformat_query_codec(v->fmt->oformat, id, FF_COMPLIANCE_NORMAL) == 1) {
        if (!(v->ast = avformat_new_stream(v->fmt, NULL))) return snprintf(err, errcap, "out of memory"), -1;
        int rc = avcodec_parameters_copy(v->ast->codecpar, in->codecpar);
        if (rc < 0) return av_fail(err, errcap, "audio", rc);
        v->ast->codecpar->codec_tag = 0; /* the output container picks its own tag */
        v->ast->time_base = in->time_base;
        v->audio_in_tb = in->time_base;
        av_dict_copy(&v->ast->metadata, in->metadata, 0);
        return 0;
    }
    if (cli_areenc_open(&v->areenc, v->fmt, in, v->fmt->oformat->audio_codec, err, errcap) != 0) return -1;
    snprintf(note, notecap, "audio re-encoded from %s to %s (%s cannot hold %s)", avcodec_get_name(id),
             cli_areenc_codec_name(v->areenc), v->fmt->oformat->name, avcodec_get_name(id));
    return 0;
}

int cli_vout_open(cli_vout **out, const cli_vout_spec *spec, const AVStream *audio_in, char *note,
                  size_t notecap, char *err, size_t errcap) {
    note[0] = '\0';
    cli_vout *v = calloc(1, sizeof *v);
    *out = v;
    if (!v) return snprintf(err, errcap, "out of memory"), -1;
    v->last_pts = AV_NOPTS_VALUE;
    const char *muxer = spec->format == CLI_VIDEO_WEBM ? "webm" : spec->format == CLI_VIDEO_MOV ? "mov" : "mp4";
    int rc = avformat_alloc_output_context2(&v->fmt, NULL, muxer, spec->path);
    if (rc < 0) return av_fail(err, errcap, muxer, rc);
    if (setup_encoder(v, spec, err, errcap) != 0) return -1;
    if (!(v->vst = avformat_new_stream(v->fmt, NULL))) return snprintf(err, errcap, "out of memory"), -1;
    if ((rc = avcodec_parameters_from_context(v->vst->codecpar, v->enc)) < 0) return av_fail(err, errcap, "video", rc);
    v->vst->time_base = v->enc->time_base;
    v->vst->avg_frame_rate = spec->frame_rate;
    if (spec->display_matrix) {
        /* A phone's portrait clip is stored sideways with a rotation: keep it. */
        uint8_t *m = av_stream_new_side_data(v->vst, AV_PKT_DATA_DISPLAYMATRIX, 9 * sizeof(int32_t));
        if (m) memcpy(m, spec->display_matrix, 9 * sizeof(int32_t));
    }
    if (audio_in && setup_audio(v, audio_in, note, notecap, err, errcap) != 0) return -1;
    if ((rc = avio_open(&v->fmt->pb, spec->path, AVIO_FLAG_WRITE)) < 0) return av_fail(err, errcap, spec->path, rc);
    if ((rc = avformat_write_header(v->fmt, NULL)) < 0) return av_fail(err, errcap, "writing the header", rc);
    v->header_written = 1;
    return 0;
}

int cli_vout_audio(cli_vout *v, AVPacket *pkt, char *err, size_t errcap) {
    if (v->areenc) return cli_areenc_packet(v->areenc, v->fmt, pkt, err, errcap);
    if (!v->ast) return 0;
    av_packet_rescale_ts(pkt, v->audio_in_tb, v->ast->time_base);
    pkt->stream_index = v->ast->index;
    pkt->pos = -1;
    int rc = av_interleaved_write_frame(v->fmt, pkt);
    return rc < 0 ? av_fail(err, errcap, "writing audio", rc) : 0;
}

static int write_video_packets(cli_vout *v, char *err, size_t errcap) {
    for (;;) {
        int rc = avcodec_receive_packet(v->enc, v->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return 0;
        if (rc < 0) return av_fail(err, errcap, "encoding", rc);
        av_packet_rescale_ts(v->pkt, v->enc->time_base, v->vst->time_base);
        v->pkt->stream_index = v->vst->index;
        rc = av_interleaved_write_frame(v->fmt, v->pkt);
        if (rc < 0) return av_fail(err, errcap, "writing video", rc);
    }
}

int cli_vout_frame(cli_vout *v, const pm_output *px, int64_t pts, char *err, size_t errcap) {
    if (px->width != v->enc->width || px->height != v->enc->height) {
        snprintf(err, errcap, "its size %dx%d differs from the first frame's %dx%d", px->width, px->height,
                 v->enc->width, v->enc->height);
        return -1;
    }
    int rc = av_frame_make_writable(v->frame);
    if (rc < 0) return av_fail(err, errcap, "frame", rc);
    const uint8_t *src[4] = {px->data, NULL, NULL, NULL};
    int src_stride[4] = {(int)px->stride, 0, 0, 0};
    sws_scale(v->sws, src, src_stride, 0, px->height, v->frame->data, v->frame->linesize);
    /* Encoders need rising timestamps; a repeated or missing one follows the last. */
    if (pts == AV_NOPTS_VALUE || (v->last_pts != AV_NOPTS_VALUE && pts <= v->last_pts))
        pts = v->last_pts == AV_NOPTS_VALUE ? 0 : v->last_pts + 1;
    v->last_pts = pts;
    v->frame->pts = pts;
    if ((rc = avcodec_send_frame(v->enc, v->frame)) < 0) return av_fail(err, errcap, "encoding", rc);
    return write_video_packets(v, err, errcap);
}

int cli_vout_close(cli_vout *v, char *err, size_t errcap) {
    int rc = avcodec_send_frame(v->enc, NULL);
    if (rc < 0 && rc != AVERROR_EOF) return av_fail(err, errcap, "encoding", rc);
    if (write_video_packets(v, err, errcap) != 0) return -1;
    if (v->areenc && cli_areenc_flush(v->areenc, v->fmt, err, errcap) != 0) return -1;
    if ((rc = av_write_trailer(v->fmt)) < 0) return av_fail(err, errcap, "writing the trailer", rc);
    v->header_written = 0;
    if ((rc = avio_closep(&v->fmt->pb)) < 0) return av_fail(err, errcap, "closing", rc);
    return 0;
}

void cli_vout_free(cli_vout *v) {
    if (!v) return;
    if (v->fmt) {
        if (v->fmt->pb) avio_closep(&v->fmt->pb);
        avformat_free_context(v->fmt);
    }
    avcodec_free_context(&v->enc);
    sws_freeContext(v->sws);
    av_frame_free(&v->frame);
    av_packet_free(&v->pkt);
    cli_areenc_free(v->areenc);
    free(v);
}
