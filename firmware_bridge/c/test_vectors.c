/*
 * Host-side test of rb_frame against firmware_bridge/vectors.json (through the generated vectors.h), plus
 * a few edge cases the vectors do not pin down and a deterministic stress run of the streaming decoder.
 *
 * Build (tests/integration/test_c_codec.py does this in a temporary folder):
 *   python firmware_bridge/c/gen_vectors_header.py -o vectors.h
 *   gcc -std=c99 -Wall -Wextra -Werror -pedantic -Wconversion -Wshadow -O2 -I. -Ifirmware_bridge/c \
 *       firmware_bridge/c/rb_frame.c firmware_bridge/c/test_vectors.c -o test_vectors
 *
 * One line per failure, then the summary `rb_frame: N vectors passed` (the pytest compares N with the
 * number of vectors in the JSON, so a section skipped here cannot go unnoticed); exit status 1 on failure.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rb_frame.h"
#include "vectors.h"

#define MAX_RESULTS 64u
#define STRESS_BYTES 200000u
#define STRESS_MAX_PRINTED 10

static unsigned failures;

static void fail(const char *name, const char *fmt, ...)
{
    va_list args;

    failures++;
    printf("FAIL %s: ", name);
    va_start(args, fmt);
    vprintf(fmt, args);
    va_end(args);
    putchar('\n');
}

static const uint8_t *pool_at(rbv_bytes bytes)
{
    return &rbv_pool[bytes.offset];
}

static const char *result_name(rb_result result)
{
    switch (result) {
    case RB_NEED_MORE:
        return "need_more";
    case RB_FRAME:
        return "frame";
    case RB_REJECT_BAD_COBS:
        return "bad_cobs";
    case RB_REJECT_TOO_SHORT:
        return "too_short";
    case RB_REJECT_TOO_LONG:
        return "too_long";
    case RB_REJECT_BAD_CRC:
        return "bad_crc";
    }
    return "(not an rb_result)";
}

/* Reports the first difference; 1 if equal. */
static int same_bytes(const char *name, const char *what, const uint8_t *got, size_t got_len,
                      const uint8_t *want, size_t want_len)
{
    size_t i;

    for (i = 0; i < got_len && i < want_len; i++) {
        if (got[i] != want[i]) {
            fail(name, "%s differs at byte %zu: 0x%02x, expected 0x%02x", what, i, got[i], want[i]);
            return 0;
        }
    }
    if (got_len != want_len) {
        fail(name, "%s is %zu bytes, expected %zu", what, got_len, want_len);
        return 0;
    }
    return 1;
}

static int same_frame(const char *name, const char *what, const rb_frame *got, rbv_fields want)
{
    if (got->seq != want.seq || got->ack != want.ack || got->type != want.type) {
        fail(name, "%s has seq/ack/type %u/%u/%u, expected %u/%u/%u", what, got->seq, got->ack, got->type,
             want.seq, want.ack, want.type);
        return 0;
    }
    return same_bytes(name, what, got->payload, got->payload_len, pool_at(want.payload), want.payload.len);
}

static void fields_to_frame(rbv_fields fields, rb_frame *frame)
{
    memset(frame, 0, sizeof *frame);
    frame->seq = fields.seq;
    frame->ack = fields.ack;
    frame->type = fields.type;
    frame->payload_len = (uint8_t)fields.payload.len;
    memcpy(frame->payload, pool_at(fields.payload), fields.payload.len);
}

/* A fresh decoder over all of wire: every result other than RB_NEED_MORE, in order. */
static size_t decode_all(const uint8_t *wire, size_t len, rb_result *results, rb_frame *frames)
{
    rb_decoder decoder;
    rb_frame frame;
    size_t count = 0;
    size_t i;

    rb_decoder_init(&decoder);
    for (i = 0; i < len; i++) {
        rb_result result = rb_decoder_feed(&decoder, wire[i], &frame);

        if (result != RB_NEED_MORE && count < MAX_RESULTS) {
            results[count] = result;
            frames[count] = frame;
            count++;
        }
    }
    return count;
}

static int check_crc16(const rbv_crc16 *v)
{
    uint16_t got = rb_crc16(pool_at(v->data), v->data.len);

    if (got != v->crc) {
        fail(v->name, "crc16 0x%04x, expected 0x%04x", got, v->crc);
        return 0;
    }
    return 1;
}

static int check_cobs(const rbv_cobs *v)
{
    static uint8_t buf[600];
    const uint8_t *raw = pool_at(v->raw);
    const uint8_t *encoded = pool_at(v->encoded);
    size_t len;
    size_t decoded_len = 0;
    int err;
    unsigned before = failures;

    len = rb_cobs_encode(raw, v->raw.len, buf, RB_COBS_MAX_ENCODED(v->raw.len));
    same_bytes(v->name, "encoded", buf, len, encoded, v->encoded.len);
    if (len > RB_COBS_MAX_ENCODED(v->raw.len)) {
        fail(v->name, "encoded to %zu bytes, over the documented bound %zu", len,
             (size_t)RB_COBS_MAX_ENCODED(v->raw.len));
    }
    if (rb_cobs_encode(raw, v->raw.len, buf, v->encoded.len) != v->encoded.len) {
        fail(v->name, "does not encode into a buffer of exactly its encoded length");
    }
    if (rb_cobs_encode(raw, v->raw.len, buf, v->encoded.len - 1u) != 0) {
        fail(v->name, "encoding into a buffer one byte short did not return 0");
    }

    err = rb_cobs_decode(encoded, v->encoded.len, buf, sizeof buf, &decoded_len);
    if (err != RB_COBS_OK) {
        fail(v->name, "decode returned %d", err);
    } else {
        same_bytes(v->name, "decoded", buf, decoded_len, raw, v->raw.len);
    }
    memcpy(buf, encoded, v->encoded.len);
    err = rb_cobs_decode(buf, v->encoded.len, buf, sizeof buf, &decoded_len);
    if (err != RB_COBS_OK) {
        fail(v->name, "decode in place returned %d", err);
    } else {
        same_bytes(v->name, "decoded in place", buf, decoded_len, raw, v->raw.len);
    }
    return failures == before;
}

static int check_frame(const rbv_frame *v)
{
    uint8_t out[RB_MAX_FRAME_WIRE];
    rb_frame frame;
    rb_result results[MAX_RESULTS];
    rb_frame frames[MAX_RESULTS];
    size_t len;
    size_t count;
    unsigned before = failures;

    fields_to_frame(v->frame, &frame);
    len = rb_frame_encode(&frame, out, sizeof out);
    same_bytes(v->name, "encoded wire", out, len, pool_at(v->wire), v->wire.len);
    if (rb_frame_encode(&frame, out, v->wire.len - 1u) != 0) {
        fail(v->name, "encoding into a buffer one byte short did not return 0");
    }

    count = decode_all(pool_at(v->wire), v->wire.len, results, frames);
    if (count != 1 || results[0] != RB_FRAME) {
        fail(v->name, "decoded to %zu results (first %s), expected one frame", count,
             count ? result_name(results[0]) : "-");
    } else {
        same_frame(v->name, "decoded frame", &frames[0], v->frame);
    }
    return failures == before;
}

static int check_bad_frame(const rbv_bad_frame *v)
{
    rb_result results[MAX_RESULTS];
    rb_frame frames[MAX_RESULTS];
    size_t count = decode_all(pool_at(v->wire), v->wire.len, results, frames);

    if (count != 1 || results[0] != v->reject) {
        fail(v->name, "decoded to %zu results (first %s), expected one %s", count,
             count ? result_name(results[0]) : "-", result_name(v->reject));
        return 0;
    }
    return 1;
}

static int check_stream(const rbv_stream *v)
{
    rb_result results[MAX_RESULTS];
    rb_frame frames[MAX_RESULTS];
    size_t count = decode_all(pool_at(v->wire), v->wire.len, results, frames);
    size_t i;
    unsigned before = failures;

    for (i = 0; i < count && i < v->result_count; i++) {
        const rbv_result *want = &rbv_results[v->first_result + i];
        char what[48];

        if (results[i] != want->result) {
            fail(v->name, "result %zu is %s, expected %s", i, result_name(results[i]),
                 result_name(want->result));
        } else if (want->result == RB_FRAME) {
            snprintf(what, sizeof what, "frame of result %zu", i);
            same_frame(v->name, what, &frames[i], want->frame);
        }
    }
    if (count != v->result_count) {
        fail(v->name, "%zu results, expected %zu", count, v->result_count);
    }
    return failures == before;
}

/*
 * Frames never hold a block of 253 or 254 bytes, so only these lengths reach the 0xFE and 0xFF codes and
 * the block that fills up exactly at the end of the data.
 */
static void check_cobs_round_trips(void)
{
    static const size_t zero_every[] = {0, 1, 2, 253, 254, 255, 256, 300};
    static uint8_t raw[600];
    static uint8_t encoded[RB_COBS_MAX_ENCODED(sizeof raw)];
    static uint8_t decoded[sizeof raw];
    size_t len;
    size_t k;
    size_t i;

    for (k = 0; k < sizeof zero_every / sizeof zero_every[0]; k++) {
        for (len = 0; len <= sizeof raw; len++) {
            size_t encoded_len;
            size_t decoded_len = 0;

            for (i = 0; i < len; i++) {
                int zero = zero_every[k] != 0 && i % zero_every[k] == zero_every[k] - 1u;
                raw[i] = zero ? 0 : (uint8_t)(i % 255u + 1u);
            }
            encoded_len = rb_cobs_encode(raw, len, encoded, RB_COBS_MAX_ENCODED(len));
            if (encoded_len == 0 || memchr(encoded, 0, encoded_len) != NULL ||
                rb_cobs_decode(encoded, encoded_len, decoded, sizeof decoded, &decoded_len) != RB_COBS_OK ||
                decoded_len != len || memcmp(decoded, raw, len) != 0) {
                fail("edge: cobs round trip", "%zu bytes with a zero every %zu do not round trip", len,
                     zero_every[k]);
                return;
            }
        }
    }
}

/* Rules the vectors leave implicit; each is something a port could plausibly get wrong. */
static unsigned check_edges(void)
{
    static uint8_t wire[300];
    rb_result results[MAX_RESULTS];
    rb_frame frames[MAX_RESULTS];
    rb_frame frame;
    uint8_t buf[RB_MAX_FRAME_WIRE];
    size_t count;
    size_t out_len = 0;
    size_t frame_len;
    unsigned before = failures;

    memset(&frame, 0, sizeof frame);
    frame.payload_len = RB_MAX_PAYLOAD + 1u;
    if (rb_frame_encode(&frame, buf, sizeof buf) != 0) {
        fail("edge: payload of 60 bytes", "encoded, expected 0");
    }

    /* 65 bytes between delimiters are still decoded (64 zeros: a CRC mismatch); 66 are too long. */
    wire[0] = 0;
    memset(&wire[1], 0x01, 65);
    wire[66] = 0;
    count = decode_all(wire, 67, results, frames);
    if (count != 1 || results[0] != RB_REJECT_BAD_CRC) {
        fail("edge: 65 bytes between delimiters", "%zu results (first %s), expected one bad_crc", count,
             count ? result_name(results[0]) : "-");
    }
    memset(&wire[1], 0x01, 66);
    wire[67] = 0;
    count = decode_all(wire, 68, results, frames);
    if (count != 1 || results[0] != RB_REJECT_TOO_LONG) {
        fail("edge: 66 bytes between delimiters", "%zu results (first %s), expected one too_long", count,
             count ? result_name(results[0]) : "-");
    }

    /* One report per over-long run however long, then back in step with the next frame. */
    memset(wire, 0x5a, 250);
    frame.seq = 9;
    frame.payload_len = 3;
    frame_len = rb_frame_encode(&frame, &wire[250], sizeof wire - 250u);
    count = decode_all(wire, 250u + frame_len, results, frames);
    if (count != 2 || results[0] != RB_REJECT_TOO_LONG || results[1] != RB_FRAME || frames[1].seq != 9) {
        fail("edge: 250 garbage bytes, then a frame", "%zu results (first %s), expected too_long, frame", count,
             count ? result_name(results[0]) : "-");
    }

    /* A 4-byte body is too short even though it would hold a header byte and a CRC. */
    wire[0] = 0;
    frame_len = rb_cobs_encode((const uint8_t *)"\x01\x02\x03\x04", 4, &wire[1], sizeof wire - 2u);
    wire[frame_len + 1u] = 0;
    count = decode_all(wire, frame_len + 2u, results, frames);
    if (count != 1 || results[0] != RB_REJECT_TOO_SHORT) {
        fail("edge: body of 4 bytes", "%zu results (first %s), expected one too_short", count,
             count ? result_name(results[0]) : "-");
    }

    /* Delimiters alone are not noise. */
    memset(wire, 0, 10);
    if (decode_all(wire, 10, results, frames) != 0) {
        fail("edge: ten delimiters", "reported something, expected nothing");
    }

    if (rb_cobs_decode((const uint8_t *)"\x02\x00", 2, buf, sizeof buf, &out_len) != RB_COBS_ERR_ZERO) {
        fail("edge: cobs 02 00", "expected RB_COBS_ERR_ZERO");
    }
    if (rb_cobs_decode((const uint8_t *)"\x05\x01", 2, buf, sizeof buf, &out_len) != RB_COBS_ERR_OVERRUN) {
        fail("edge: cobs 05 01", "expected RB_COBS_ERR_OVERRUN");
    }
    if (rb_cobs_decode((const uint8_t *)"\x03\x01\x01", 3, buf, 1, &out_len) != RB_COBS_ERR_NO_ROOM) {
        fail("edge: cobs 03 01 01 into 1 byte", "expected RB_COBS_ERR_NO_ROOM");
    }
    if (rb_cobs_encode((const uint8_t *)"", 0, buf, 0) != 0) {
        fail("edge: cobs encode into 0 bytes", "expected 0");
    }
    check_cobs_round_trips();
    return failures - before;
}

static uint32_t xorshift32(uint32_t *state)
{
    uint32_t x = *state;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

typedef struct {
    rb_decoder decoder;
    uint8_t run[RB_MAX_ENCODED]; /* this harness's own copy of the bytes since the last delimiter */
    size_t run_len;              /* may exceed RB_MAX_ENCODED: then run holds only the first bytes */
    unsigned long fed;
    unsigned long counts[RB_REJECT_BAD_CRC + 1];
} stress_state;

/*
 * Whatever frame the decoder reports must be exactly what the bytes since the last delimiter say, checked
 * here from the harness's own copy: a COBS run that decodes to this frame's body with a matching CRC, and
 * re-encodes to the same run (COBS is unique for runs this short).
 */
static void check_reported_frame(const stress_state *s, const rb_frame *frame)
{
    uint8_t body[RB_MAX_ENCODED];
    uint8_t wire[RB_MAX_FRAME_WIRE];
    size_t body_len = 0;
    size_t head_len;
    size_t wire_len;
    uint16_t sent;

    if (s->run_len > RB_MAX_ENCODED ||
        rb_cobs_decode(s->run, s->run_len, body, sizeof body, &body_len) != RB_COBS_OK ||
        body_len != (size_t)frame->payload_len + RB_MIN_BODY) {
        fail("stress", "frame reported at byte %lu from a run of %zu bytes that is no frame", s->fed,
             s->run_len);
        return;
    }
    head_len = body_len - RB_CRC_BYTES;
    sent = (uint16_t)(body[head_len] | (unsigned)(body[head_len + 1u] << 8));
    if (sent != rb_crc16(body, head_len) || body[0] != frame->seq || body[1] != frame->ack ||
        body[2] != frame->type || memcmp(&body[RB_HEADER_BYTES], frame->payload, frame->payload_len) != 0) {
        fail("stress", "frame reported at byte %lu does not match its bytes or its CRC", s->fed);
        return;
    }
    wire_len = rb_frame_encode(frame, wire, sizeof wire);
    if (wire_len != s->run_len + 2u || memcmp(&wire[1], s->run, s->run_len) != 0) {
        fail("stress", "frame reported at byte %lu does not re-encode to its bytes", s->fed);
    }
}

static rb_result stress_feed(stress_state *s, uint8_t byte, rb_frame *frame)
{
    rb_result result = rb_decoder_feed(&s->decoder, byte, frame);

    if (result == RB_FRAME) {
        check_reported_frame(s, frame);
    }
    if (byte == 0) {
        s->run_len = 0;
    } else {
        if (s->run_len < RB_MAX_ENCODED) {
            s->run[s->run_len] = byte;
        }
        s->run_len++;
    }
    s->fed++;
    s->counts[result]++;
    return result;
}

static int frames_equal(const rb_frame *a, const rb_frame *b)
{
    return a->seq == b->seq && a->ack == b->ack && a->type == b->type && a->payload_len == b->payload_len &&
           memcmp(a->payload, b->payload, a->payload_len) == 0;
}

/*
 * ~200,000 bytes of xorshift noise (zero-heavy, with runs long enough to overflow), whole frames, frames
 * cut short and frames with one byte changed, in random order. Every whole frame must come out at its
 * trailing delimiter: its leading one ends whatever noise came before.
 */
static void stress(void)
{
    stress_state s;
    uint32_t rng = 0x2545F491u;
    unsigned long inserted = 0;
    unsigned long recovered = 0;
    unsigned long corrupted = 0;
    unsigned long corrupted_taken = 0;
    unsigned long garbage_frames;
    int printed = 0;

    memset(&s, 0, sizeof s);
    rb_decoder_init(&s.decoder);
    while (s.fed < STRESS_BYTES) {
        uint32_t kind = xorshift32(&rng) % 8u;
        rb_frame sent;
        rb_frame got;
        uint8_t wire[RB_MAX_FRAME_WIRE];
        size_t wire_len;
        size_t i;

        if (kind < 3u) {
            /* Short zero-heavy bursts make short runs; long uniform ones overflow the buffer. */
            size_t len = xorshift32(&rng) % (kind == 2u ? 300u : 70u);
            uint32_t zero_mask = kind == 2u ? 0u : 0x700u;

            for (i = 0; i < len; i++) {
                uint32_t r = xorshift32(&rng);
                stress_feed(&s, zero_mask != 0 && (r & zero_mask) == 0 ? 0 : (uint8_t)(r & 0xFFu), &got);
            }
            continue;
        }

        memset(&sent, 0, sizeof sent);
        sent.seq = (uint8_t)xorshift32(&rng);
        sent.ack = (uint8_t)xorshift32(&rng);
        sent.type = (uint8_t)xorshift32(&rng);
        sent.payload_len = (uint8_t)(xorshift32(&rng) % (RB_MAX_PAYLOAD + 1u));
        for (i = 0; i < sent.payload_len; i++) {
            sent.payload[i] = (uint8_t)(xorshift32(&rng) % 4u == 0 ? 0 : xorshift32(&rng));
        }
        wire_len = rb_frame_encode(&sent, wire, sizeof wire);
        if (wire_len == 0) {
            fail("stress", "could not encode a frame with a %u-byte payload", sent.payload_len);
            continue;
        }

        if (kind == 6u) {
            /* Cut short: the rest of the run is whatever comes next, until some delimiter. */
            size_t cut = 1u + xorshift32(&rng) % (wire_len - 2u);
            for (i = 0; i < cut; i++) {
                stress_feed(&s, wire[i], &got);
            }
            continue;
        }
        if (kind == 7u) {
            size_t at = 1u + xorshift32(&rng) % (wire_len - 2u);
            uint8_t flip = (uint8_t)(1u + xorshift32(&rng) % 255u);
            if ((uint8_t)(wire[at] ^ flip) == 0) {
                flip = (uint8_t)(flip ^ 0x01u); /* a zero would split the frame: not the damage meant here */
            }
            wire[at] = (uint8_t)(wire[at] ^ flip);
            corrupted++;
            for (i = 0; i < wire_len; i++) {
                if (stress_feed(&s, wire[i], &got) == RB_FRAME && i + 1u == wire_len) {
                    corrupted_taken++; /* only a CRC collision, and the frame was checked against its CRC */
                }
            }
            continue;
        }

        inserted++;
        for (i = 0; i < wire_len; i++) {
            rb_result result = stress_feed(&s, wire[i], &got);

            if (i + 1u < wire_len) {
                if (i > 0 && result != RB_NEED_MORE) {
                    fail("stress", "%s in the middle of frame %lu", result_name(result), inserted);
                }
            } else if (result == RB_FRAME && frames_equal(&got, &sent)) {
                recovered++;
            } else if (printed++ < STRESS_MAX_PRINTED) {
                fail("stress", "frame %lu (byte %lu) came out as %s", inserted, s.fed, result_name(result));
            } else {
                failures++;
            }
        }
    }

    garbage_frames = s.counts[RB_FRAME] - recovered - corrupted_taken;
    printf("rb_frame stress: %lu bytes, %lu of %lu frames recovered, %lu frames from noise, "
           "%lu of %lu damaged frames rejected; rejects: bad_cobs %lu, too_short %lu, too_long %lu, "
           "bad_crc %lu\n",
           s.fed, recovered, inserted, garbage_frames, corrupted - corrupted_taken, corrupted,
           s.counts[RB_REJECT_BAD_COBS], s.counts[RB_REJECT_TOO_SHORT], s.counts[RB_REJECT_TOO_LONG],
           s.counts[RB_REJECT_BAD_CRC]);
    if (recovered != inserted) {
        fail("stress", "%lu of %lu whole frames were lost", inserted - recovered, inserted);
    }
}

int main(void)
{
    unsigned total = 0;
    unsigned passed = 0;
    unsigned edge_failures;
    size_t i;

    for (i = 0; i < RBV_CRC16_COUNT; i++, total++) {
        passed += (unsigned)check_crc16(&rbv_crc16s[i]);
    }
    for (i = 0; i < RBV_COBS_COUNT; i++, total++) {
        passed += (unsigned)check_cobs(&rbv_cobss[i]);
    }
    for (i = 0; i < RBV_FRAMES_COUNT; i++, total++) {
        passed += (unsigned)check_frame(&rbv_frames[i]);
    }
    for (i = 0; i < RBV_BAD_FRAMES_COUNT; i++, total++) {
        passed += (unsigned)check_bad_frame(&rbv_bad_frames[i]);
    }
    for (i = 0; i < RBV_STREAMS_COUNT; i++, total++) {
        passed += (unsigned)check_stream(&rbv_streams[i]);
    }
    edge_failures = check_edges();
    stress();

    if (edge_failures == 0) {
        printf("rb_frame: edge cases passed\n");
    }
    if (passed == total && failures == 0) {
        printf("rb_frame: %u vectors passed\n", total);
        return EXIT_SUCCESS;
    }
    printf("rb_frame: %u of %u vectors passed, %u failures in all\n", passed, total, failures);
    return EXIT_FAILURE;
}
