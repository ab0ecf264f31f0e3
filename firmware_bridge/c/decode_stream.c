/*
 * Differential-test driver: runs rb_decoder over byte streams and prints what it reports, for
 * tests/integration/test_c_codec.py to compare with firmware_bridge.framing.FrameDecoder.
 *
 *   decode_stream FILE
 *
 * FILE holds any number of streams, each as a 4-byte little-endian length and that many bytes, so one
 * process serves a whole batch (starting a process costs more than decoding a stream). Every stream gets a
 * fresh decoder and is fed one byte at a time, as a UART interrupt would. Output, per stream:
 *   F <seq> <ack> <type> <payload hex>   a frame (decimal fields, hex possibly empty)
 *   R <reason>                           a reject: bad_cobs, too_short, too_long or bad_crc
 *   E                                    end of the stream
 * A truncated file is an error (exit status 2) rather than a short stream, so a broken batch cannot pass.
 */
#include <stdio.h>
#include <stdlib.h>

#include "rb_frame.h"

static const char *reject_name(rb_result result)
{
    switch (result) {
    case RB_REJECT_BAD_COBS:
        return "bad_cobs";
    case RB_REJECT_TOO_SHORT:
        return "too_short";
    case RB_REJECT_TOO_LONG:
        return "too_long";
    case RB_REJECT_BAD_CRC:
        return "bad_crc";
    case RB_NEED_MORE:
    case RB_FRAME:
        break;
    }
    return "not_a_reject";
}

static int decode_stream(FILE *in, unsigned long length)
{
    rb_decoder decoder;
    rb_frame frame;
    unsigned long i;

    rb_decoder_init(&decoder);
    for (i = 0; i < length; i++) {
        int c = getc(in);
        rb_result result;

        if (c == EOF) {
            return -1;
        }
        result = rb_decoder_feed(&decoder, (uint8_t)c, &frame);
        if (result == RB_FRAME) {
            unsigned j;

            printf("F %u %u %u ", frame.seq, frame.ack, frame.type);
            for (j = 0; j < frame.payload_len; j++) {
                printf("%02x", frame.payload[j]);
            }
            putchar('\n');
        } else if (result != RB_NEED_MORE) {
            printf("R %s\n", reject_name(result));
        }
    }
    puts("E");
    return 0;
}

int main(int argc, char **argv)
{
    FILE *in;
    unsigned long streams = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE (streams as 4-byte little-endian length + bytes)\n", argv[0]);
        return 2;
    }
    in = fopen(argv[1], "rb");
    if (in == NULL) {
        perror(argv[1]);
        return 2;
    }
    for (;;) {
        unsigned char header[4];
        size_t got = fread(header, 1, sizeof header, in);
        unsigned long length;

        if (got == 0 && feof(in)) {
            break;
        }
        if (got != sizeof header) {
            fprintf(stderr, "%s: stream %lu: truncated length\n", argv[1], streams);
            return 2;
        }
        length = (unsigned long)header[0] | (unsigned long)header[1] << 8 | (unsigned long)header[2] << 16 |
                 (unsigned long)header[3] << 24;
        if (decode_stream(in, length) != 0) {
            fprintf(stderr, "%s: stream %lu: ends before its %lu bytes\n", argv[1], streams, length);
            return 2;
        }
        streams++;
    }
    fclose(in);
    return fflush(stdout) == 0 ? 0 : 2;
}
