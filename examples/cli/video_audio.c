/* video_audio.c - the input's audio, re-encoded for a container that cannot take its
 * codec as it is (AAC into WebM becomes Opus). Decode, resample to what the encoder
 * takes, gather its frame size in a FIFO, encode, write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>
#include <libswresample/swresample.h>

#include "video.h"

struct cli_areenc {
    AVCodecContext *dec, *enc;
    AVStream *out_st;
    AVRational in_tb;
    SwrContext *swr;
    AVAudioFifo *fifo;
    AVFrame *frame, *chunk;
    AVPacket *pkt;
    int64_t next_pts; /* in samples of the output rate; AV_NOPTS_VALUE before the first frame */
};

static int fail(char *err, size_t errcap, const char *what, int code) {
    char buf[128];
    snprintf(err, errcap, "audio: %s: %s", what, cli_av_err(code, buf, sizeof buf));
    return -1;
}

static int pick_rate(const AVCodec *c, int want) {
    if (!c->supported_samplerates) return want;
    int best = c->supported_samplerates[0];
    for (const int *r = c->supported_samplerates; *r; r++) {
        if (*r == want) return want;
        if (*r == 48000) best = 48000;
    }
    return best;
}

int cli_areenc_open(cli_areenc **out, AVFormatContext *fmt, const AVStream *in, enum AVCodecID id, char *err,
                    size_t errcap) {
    *out = NULL;
    const AVCodec *dc = avcodec_find_decoder(in->codecpar->codec_id);
    const AVCodec *ec = avcodec_find_encoder(id);
    if (!dc) {
        snprintf(err, errcap, "audio: no decoder for %s", avcodec_get_name(in->codecpar->codec_id));
        return -1;
    }
    if (!ec) {
        snprintf(err, errcap, "audio: no %s encoder in this FFmpeg", avcodec_get_name(id));
        return -1;
    }
    cli_areenc *a = calloc(1, sizeof *a);
    if (!a) return snprintf(err, errcap, "out of memory"), -1;
    *out = a;
    a->in_tb = in->time_base;
    a->next_pts = AV_NOPTS_VALUE;
    int rc;
    if (!(a->dec = avcodec_alloc_context3(dc)) || !(a->enc = avcodec_alloc_context3(ec)) ||
        !(a->frame = av_frame_alloc()) || !(a->chunk = av_frame_alloc()) || !(a->pkt = av_packet_alloc()))
        return snprintf(err, errcap, "out of memory"), -1;
    if ((rc = avcodec_parameters_to_context(a->dec, in->codecpar)) < 0) return fail(err, errcap, "decoder", rc);
    a->dec->pkt_timebase = in->time_base;
    if ((rc = avcodec_open2(a->dec, dc, NULL)) < 0) return fail(err, errcap, "cannot open the decoder", rc);

    /* Mono and stereo stay as they are; more channels become stereo, which every
     * encoder the containers here take can carry. */
    AVChannelLayout layout;
    av_channel_layout_default(&layout, a->dec->ch_layout.nb_channels >= 2 ? 2 : 1);
    if ((rc = av_channel_layout_copy(&a->enc->ch_layout, &layout)) < 0) return fail(err, errcap, "layout", rc);
    a->enc->sample_rate = pick_rate(ec, a->dec->sample_rate);
    a->enc->sample_fmt = ec->sample_fmts ? ec->sample_fmts[0] : AV_SAMPLE_FMT_FLTP;
    a->enc->time_base = (AVRational){1, a->enc->sample_rate};
    a->enc->bit_rate = 128000;
    if (fmt->oformat->flags & AVFMT_GLOBALHEADER) a->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((rc = avcodec_open2(a->enc, ec, NULL)) < 0) return fail(err, errcap, "cannot open the encoder", rc);
    if (!(a->out_st = avformat_new_stream(fmt, NULL))) return snprintf(err, errcap, "out of memory"), -1;
    if ((rc = avcodec_parameters_from_context(a->out_st->codecpar, a->enc)) < 0)
        return fail(err, errcap, "parameters", rc);
    a->out_st->time_base = a->enc->time_base;
    av_dict_copy(&a->out_st->metadata, in->metadata, 0);

    if ((rc = swr_alloc_set_opts2(&a->swr, &a->enc->ch_layout, a->enc->sample_fmt, a->enc->sample_rate,
                                  &a->dec->ch_layout, a->dec->sample_fmt, a->dec->sample_rate, 0, NULL)) < 0 ||
        (rc = swr_init(a->swr)) < 0)
        return fail(err, errcap, "resampler", rc);
    if (!(a->fifo = av_audio_fifo_alloc(a->enc->sample_fmt, a->enc->ch_layout.nb_channels, 4096)))
        return snprintf(err, errcap, "out of memory"), -1;
    return 0;
}

const char *cli_areenc_codec_name(const cli_areenc *a) { return a->enc->codec->name; }

static int write_packets(cli_areenc *a, AVFormatContext *fmt, char *err, size_t errcap) {
    for (;;) {
        int rc = avcodec_receive_packet(a->enc, a->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return 0;
        if (rc < 0) return fail(err, errcap, "encoding", rc);
        av_packet_rescale_ts(a->pkt, a->enc->time_base, a->out_st->time_base);
        a->pkt->stream_index = a->out_st->index;
        rc = av_interleaved_write_frame(fmt, a->pkt);
        if (rc < 0) return fail(err, errcap, "writing", rc);
    }
}

/* Encodes n samples from the FIFO (n below the frame size only at the end). */
static int encode_from_fifo(cli_areenc *a, AVFormatContext *fmt, int n, char *err, size_t errcap) {
    int frame_size = a->enc->frame_size > 0 ? a->enc->frame_size : n;
    int fill = n;
    /* An encoder that takes no short last frame gets it padded with silence. */
    if (n < frame_size && !(a->enc->codec->capabilities & AV_CODEC_CAP_SMALL_LAST_FRAME)) fill = frame_size;
    av_frame_unref(a->chunk);
    a->chunk->nb_samples = fill;
    a->chunk->format = a->enc->sample_fmt;
    a->chunk->sample_rate = a->enc->sample_rate;
    int rc;
    if ((rc = av_channel_layout_copy(&a->chunk->ch_layout, &a->enc->ch_layout)) < 0 ||
        (rc = av_frame_get_buffer(a->chunk, 0)) < 0)
        return fail(err, errcap, "buffer", rc);
    if (fill > n)
        av_samples_set_silence(a->chunk->extended_data, 0, fill, a->enc->ch_layout.nb_channels,
                               a->enc->sample_fmt);
    if (av_audio_fifo_read(a->fifo, (void **)a->chunk->extended_data, n) < n)
        return snprintf(err, errcap, "audio: FIFO underrun"), -1;
    a->chunk->pts = a->next_pts;
    a->next_pts += fill;
    if ((rc = avcodec_send_frame(a->enc, a->chunk)) < 0) return fail(err, errcap, "encoding", rc);
    return write_packets(a, fmt, err, errcap);
}

static int drain_fifo(cli_areenc *a, AVFormatContext *fmt, int all, char *err, size_t errcap) {
    int frame_size = a->enc->frame_size > 0 ? a->enc->frame_size : 1024;
    while (av_audio_fifo_size(a->fifo) >= frame_size || (all && av_audio_fifo_size(a->fifo) > 0)) {
        int n = av_audio_fifo_size(a->fifo);
        if (n > frame_size) n = frame_size;
        if (encode_from_fifo(a, fmt, n, err, errcap) != 0) return -1;
    }
    return 0;
}

/* Converts frame (NULL: what the resampler still holds) into the FIFO. */
static int convert(cli_areenc *a, const AVFrame *frame, char *err, size_t errcap) {
    int in = frame ? frame->nb_samples : 0;
    int room = swr_get_out_samples(a->swr, in);
    if (room <= 0) return 0;
    uint8_t **buf = NULL;
    int rc = av_samples_alloc_array_and_samples(&buf, NULL, a->enc->ch_layout.nb_channels, room,
                                                a->enc->sample_fmt, 0);
    if (rc < 0) return fail(err, errcap, "buffer", rc);
    int got = swr_convert(a->swr, buf, room, frame ? (const uint8_t **)frame->extended_data : NULL, in);
    if (got > 0 && av_audio_fifo_write(a->fifo, (void **)buf, got) < got) got = AVERROR(ENOMEM);
    av_freep(&buf[0]);
    av_freep(&buf);
    return got < 0 ? fail(err, errcap, "resampling", got) : 0;
}

static int decode_frames(cli_areenc *a, AVFormatContext *fmt, char *err, size_t errcap) {
    for (;;) {
        int rc = avcodec_receive_frame(a->dec, a->frame);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF) return 0;
        if (rc < 0) return fail(err, errcap, "decoding", rc);
        if (a->next_pts == AV_NOPTS_VALUE) {
            /* The first sample keeps its time: audio stays in step with the video. */
            int64_t t = a->frame->best_effort_timestamp;
            a->next_pts = t == AV_NOPTS_VALUE ? 0 : av_rescale_q(t, a->in_tb, a->enc->time_base);
        }
        rc = convert(a, a->frame, err, errcap);
        av_frame_unref(a->frame);
        if (rc != 0 || drain_fifo(a, fmt, 0, err, errcap) != 0) return -1;
    }
}

int cli_areenc_packet(cli_areenc *a, AVFormatContext *fmt, AVPacket *pkt, char *err, size_t errcap) {
    int rc = avcodec_send_packet(a->dec, pkt);
    /* A damaged audio packet is skipped: the picture is what the user asked for. */
    if (rc < 0 && rc != AVERROR(EAGAIN) && rc != AVERROR_INVALIDDATA) return fail(err, errcap, "decoding", rc);
    return decode_frames(a, fmt, err, errcap);
}

int cli_areenc_flush(cli_areenc *a, AVFormatContext *fmt, char *err, size_t errcap) {
    avcodec_send_packet(a->dec, NULL);
    if (decode_frames(a, fmt, err, errcap) != 0) return -1;
    if (a->next_pts == AV_NOPTS_VALUE) a->next_pts = 0;
    if (convert(a, NULL, err, errcap) != 0 || drain_fifo(a, fmt, 1, err, errcap) != 0) return -1;
    int rc = avcodec_send_frame(a->enc, NULL);
    if (rc < 0 && rc != AVERROR_EOF) return fail(err, errcap, "encoding", rc);
    return write_packets(a, fmt, err, errcap);
}

void cli_areenc_free(cli_areenc *a) {
    if (!a) return;
    avcodec_free_context(&a->dec);
    avcodec_free_context(&a->enc);
    swr_free(&a->swr);
    if (a->fifo) av_audio_fifo_free(a->fifo);
    av_frame_free(&a->frame);
    av_frame_free(&a->chunk);
    av_packet_free(&a->pkt);
    free(a);
}
