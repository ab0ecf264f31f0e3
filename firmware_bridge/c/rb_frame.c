/*
 * rb_frame: the railbot serial frame codec; see rb_frame.h and firmware_bridge/PROTOCOL.md.
 *
 * Mirrors firmware_bridge/framing.py rule for rule, including its quirks (which run is too long, which
 * COBS it accepts), because the host and the MCU must count the same noise the same way: the vectors and
 * the differential test in tests/integration/test_c_codec.py hold the two together.
 *
 * Byte copies are plain loops rather than memcpy so that the object file references no symbol at all:
 * it links into a -ffreestanding -nostdlib image as is (the test checks with nm -u).
 */
#include "rb_frame.h"

/*
 * Neither the bitwise loop nor a 256-entry table: this is the byte-at-a-time shift/xor form of the 0x1021
 * polynomial (x = top byte ^ data; x ^= x >> 4; crc = crc << 8 ^ x << 12 ^ x << 5 ^ x). It needs no
 * flash for a table (512 bytes is a lot on a small MCU) and about a dozen operations per byte instead of
 * eight rounds of shift-and-branch, so the CRC at the end of a frame stays short even when
 * rb_decoder_feed runs inside the UART interrupt.
 */
uint16_t rb_crc16(const uint8_t *data, size_t len)
{
    uint16_t crc = 0xFFFFu;
    size_t i;

    for (i = 0; i < len; i++) {
        uint16_t x = (uint16_t)(((unsigned)(crc >> 8) ^ data[i]) & 0xFFu);
        x = (uint16_t)(x ^ (x >> 4));
        crc = (uint16_t)((unsigned)(crc << 8) ^ (unsigned)(x << 12) ^ (unsigned)(x << 5) ^ x);
    }
    return crc;
}

size_t rb_cobs_encode(const uint8_t *src, size_t len, uint8_t *dst, size_t dst_cap)
{
    /* code_at: where the open block's code byte goes; w == code_at once a full block closed the data. */
    size_t code_at = 0;
    size_t w = 1;
    size_t i;

    if (dst_cap == 0) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        uint8_t byte = src[i];

        if (byte != 0) {
            if (w >= dst_cap) {
                return 0;
            }
            dst[w++] = byte;
        }
        if (byte == 0 || w - code_at == 0xFFu) {
            dst[code_at] = (uint8_t)(w - code_at);
            code_at = w;
            /* A block of 254 that ends the data opens no empty block after it, as framing.py does. */
            if (byte == 0 || i + 1 < len) {
                if (w >= dst_cap) {
                    return 0;
                }
                w++;
            }
        }
    }
    if (code_at < w) {
        dst[code_at] = (uint8_t)(w - code_at);
    }
    return w;
}

int rb_cobs_decode(const uint8_t *src, size_t len, uint8_t *dst, size_t dst_cap, size_t *out_len)
{
    /*
     * Every block of code n reads n bytes and writes at most n, so w <= at always holds and every write
     * lands on a byte already read: that is what makes dst == src safe, and lets the decoder below decode
     * in its own buffer instead of needing a second one on an interrupt stack.
     */
    size_t at = 0;
    size_t w = 0;

    while (at < len) {
        uint8_t code = src[at];
        size_t end;
        size_t i;

        if (code == 0) {
            return RB_COBS_ERR_ZERO;
        }
        if (code > len - at) {
            return RB_COBS_ERR_OVERRUN;
        }
        end = at + code;
        for (i = at + 1; i < end; i++) {
            uint8_t byte = src[i];

            if (byte == 0) {
                return RB_COBS_ERR_ZERO;
            }
            if (w >= dst_cap) {
                return RB_COBS_ERR_NO_ROOM;
            }
            dst[w++] = byte;
        }
        at = end;
        /* A 0xFF block stands for 254 bytes with no zero after them; a trailing block implies no zero. */
        if (code < 0xFFu && at < len) {
            if (w >= dst_cap) {
                return RB_COBS_ERR_NO_ROOM;
            }
            dst[w++] = 0;
        }
    }
    *out_len = w;
    return RB_COBS_OK;
}

size_t rb_frame_encode(const rb_frame *frame, uint8_t *out, size_t out_cap)
{
    uint8_t body[RB_MAX_BODY];
    size_t head_len;
    size_t encoded;
    size_t i;
    uint16_t crc;

    if (frame->payload_len > RB_MAX_PAYLOAD || out_cap < 3u) {
        return 0;
    }
    body[0] = frame->seq;
    body[1] = frame->ack;
    body[2] = frame->type;
    head_len = RB_HEADER_BYTES;
    for (i = 0; i < frame->payload_len; i++) {
        body[head_len++] = frame->payload[i];
    }
    crc = rb_crc16(body, head_len);
    /*
     * Little-endian because framing.py writes it so. A consequence: CRC over the whole body is not the
     * zero residue of a big-endian append, so receivers compare the two bytes instead.
     */
    body[head_len] = (uint8_t)(crc & 0xFFu);
    body[head_len + 1u] = (uint8_t)(crc >> 8);

    /* The leading delimiter ends whatever half frame the receiver still holds after line noise. */
    out[0] = 0;
    encoded = rb_cobs_encode(body, head_len + RB_CRC_BYTES, &out[1], out_cap - 2u);
    if (encoded == 0) {
        return 0;
    }
    out[encoded + 1u] = 0;
    return encoded + 2u;
}

void rb_decoder_init(rb_decoder *d)
{
    d->len = 0;
    d->overflow = 0;
}

static rb_result finish_run(uint8_t *buf, size_t len, rb_frame *out)
{
    size_t body_len = 0;
    size_t head_len;
    size_t i;
    uint16_t sent;

    if (rb_cobs_decode(buf, len, buf, len, &body_len) != RB_COBS_OK) {
        return RB_REJECT_BAD_COBS;
    }
    if (body_len < RB_MIN_BODY) {
        return RB_REJECT_TOO_SHORT;
    }
    /* Cannot happen (65 encoded bytes decode to at most 64), but framing.py checks it, so the order holds. */
    if (body_len > RB_MAX_BODY) {
        return RB_REJECT_TOO_LONG;
    }
    head_len = body_len - RB_CRC_BYTES;
    sent = (uint16_t)(buf[head_len] | (unsigned)(buf[head_len + 1u] << 8));
    if (sent != rb_crc16(buf, head_len)) {
        return RB_REJECT_BAD_CRC;
    }
    out->seq = buf[0];
    out->ack = buf[1];
    out->type = buf[2];
    out->payload_len = (uint8_t)(head_len - RB_HEADER_BYTES);
    for (i = 0; i < out->payload_len; i++) {
        out->payload[i] = buf[RB_HEADER_BYTES + i];
    }
    return RB_FRAME;
}

rb_result rb_decoder_feed(rb_decoder *d, uint8_t byte, rb_frame *out)
{
    size_t len;

    if (byte != 0) {
        /* Once a run cannot be a frame, only remember that: the reject is reported at its delimiter. */
        if (d->overflow || d->len >= RB_MAX_ENCODED) {
            d->overflow = 1;
        } else {
            d->buf[d->len++] = byte;
        }
        return RB_NEED_MORE;
    }
    len = d->len;
    d->len = 0;
    if (d->overflow) {
        d->overflow = 0;
        return RB_REJECT_TOO_LONG;
    }
    if (len == 0) {
        /* Back-to-back frames put two delimiters in a row; that is not noise worth counting. */
        return RB_NEED_MORE;
    }
    return finish_run(d->buf, len, out);
}
