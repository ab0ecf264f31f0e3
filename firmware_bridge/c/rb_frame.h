/*
 * rb_frame: the railbot serial frame codec for the MCU firmware (C99, no heap, no libc at link time).
 *
 * The wire format is specified in firmware_bridge/PROTOCOL.md (section 2); firmware_bridge/framing.py is
 * the reference implementation and firmware_bridge/vectors.json the contract both are tested against
 * (tests/integration/test_c_codec.py builds and runs firmware_bridge/c/test_vectors.c). When this file and
 * framing.py disagree, framing.py and the vectors win.
 *
 *   wire frame  0x00 | COBS(body) | 0x00
 *   body        seq u8 | ack u8 | type u8 | payload (0..59) | CRC-16/CCITT-FALSE over seq..payload, LE
 *
 * Every function is reentrant: all state lives in caller-owned structs, so one rb_decoder per UART is all
 * a port needs.
 */
#ifndef RB_FRAME_H
#define RB_FRAME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RB_HEADER_BYTES 3u
#define RB_CRC_BYTES 2u
#define RB_MIN_BODY (RB_HEADER_BYTES + RB_CRC_BYTES)        /* 5 */
#define RB_MAX_BODY 64u                                     /* the protocol's limit, PROTOCOL.md */
#define RB_MAX_PAYLOAD (RB_MAX_BODY - RB_MIN_BODY)          /* 59 */

/*
 * Upper bound of rb_cobs_encode's output for n input bytes: one code byte per started run of 254 bytes,
 * plus one. Kept as a macro so callers can size static buffers at compile time.
 */
#define RB_COBS_MAX_ENCODED(n) ((n) + (n) / 254u + 1u)

/* 64 bytes of body never need more than 65 encoded; anything longer between delimiters is too long. */
#define RB_MAX_ENCODED (RB_MAX_BODY + 1u)                   /* 65 */
/* Both delimiters included: the buffer a transmitter needs for any frame. */
#define RB_MAX_FRAME_WIRE (RB_MAX_ENCODED + 2u)             /* 67 */

/* rb_cobs_decode's errors; 0 is success. */
#define RB_COBS_OK 0
#define RB_COBS_ERR_ZERO (-1)    /* a zero byte inside the encoded data */
#define RB_COBS_ERR_OVERRUN (-2) /* a code byte points past the end */
#define RB_COBS_ERR_NO_ROOM (-3) /* dst_cap too small for the decoded data */

typedef struct {
    uint8_t seq;
    uint8_t ack;
    uint8_t type;
    uint8_t payload[RB_MAX_PAYLOAD];
    uint8_t payload_len;
} rb_frame;

/*
 * What one byte fed to the decoder completed. The rejects are the Python decoder's reasons, one for every
 * run of bytes between delimiters that was not a frame, so the link can count noise.
 */
typedef enum {
    RB_NEED_MORE = 0,
    RB_FRAME,
    RB_REJECT_BAD_COBS,
    RB_REJECT_TOO_SHORT,
    RB_REJECT_TOO_LONG,
    RB_REJECT_BAD_CRC
} rb_result;

/*
 * Streaming decoder state. Only the first RB_MAX_ENCODED bytes of a run are kept: a longer run can never
 * be a frame, so the rest is only noted (overflow) until the next delimiter, and line noise cannot grow
 * memory. Treat the fields as private; initialise with rb_decoder_init.
 */
typedef struct {
    uint8_t buf[RB_MAX_ENCODED];
    uint8_t len;
    uint8_t overflow;
} rb_decoder;

/* CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor ("123456789" -> 0x29B1). */
uint16_t rb_crc16(const uint8_t *data, size_t len);

/*
 * COBS-encodes len bytes of src into dst (no delimiters written). Returns the number of bytes written, or
 * 0 if they do not fit in dst_cap (dst is then left partly written). The output is never longer than
 * RB_COBS_MAX_ENCODED(len) = len + len/254 + 1, and never shorter than 1 (empty input encodes to 0x01).
 * src and dst must not overlap.
 */
size_t rb_cobs_encode(const uint8_t *src, size_t len, uint8_t *dst, size_t dst_cap);

/*
 * Decodes len COBS bytes (without delimiters) into dst and stores the decoded length in *out_len. Returns
 * RB_COBS_OK or a negative RB_COBS_ERR_*; on error dst is partly written and *out_len is untouched. The
 * output is at most len - 1 bytes long (0 for empty input). Decoding in place (dst == src) is allowed,
 * as the decoder never writes ahead of what it has read; other overlaps are not.
 */
int rb_cobs_decode(const uint8_t *src, size_t len, uint8_t *dst, size_t dst_cap, size_t *out_len);

/*
 * Writes the whole wire frame, 0x00 | COBS(body) | 0x00, into out. Returns its length (at most
 * RB_MAX_FRAME_WIRE), or 0 if frame->payload_len > RB_MAX_PAYLOAD or out_cap is too small.
 */
size_t rb_frame_encode(const rb_frame *frame, uint8_t *out, size_t out_cap);

void rb_decoder_init(rb_decoder *d);

/*
 * Feeds one received byte. Returns RB_NEED_MORE until a delimiter ends a run of bytes; then RB_FRAME with
 * *out filled in, or the reason the run was thrown away. *out is written only for RB_FRAME. An empty run
 * (two delimiters in a row, as between back-to-back frames) yields RB_NEED_MORE, and an over-long run
 * yields a single RB_REJECT_TOO_LONG however long it is. Safe to call from a UART interrupt handler; the
 * work is O(1) per byte except at a delimiter, which costs one COBS decode and one CRC of <= 65 bytes.
 */
rb_result rb_decoder_feed(rb_decoder *d, uint8_t byte, rb_frame *out);

#ifdef __cplusplus
}
#endif

#endif /* RB_FRAME_H */
