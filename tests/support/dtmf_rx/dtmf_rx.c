/* Reference DTMF receiver for tests and benches: spandsp's dtmf_rx (Debian libspandsp-dev).
 *
 * Reads signed 16-bit little-endian mono audio at 8000 Hz on stdin and prints each digit
 * spandsp reports, one per line, with the sample index (at 8 kHz) where it was reported:
 *     <sample> <digit>
 * Built by tests/support/dtmf_reference.py with: cc dtmf_rx.c -lspandsp -o dtmf_rx
 * Default spandsp parameters (Q.24 practice as spandsp implements it), no dial-tone filter.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdint.h>
#include <spandsp.h>

static long long position = 0;

static void on_digits(void *user_data, const char *digits, int len)
{
    (void) user_data;
    for (int i = 0; i < len; i++)
        printf("%lld %c\n", position, digits[i]);
}

int main(void)
{
    int16_t buf[160];
    size_t n;
    dtmf_rx_state_t *rx = dtmf_rx_init(NULL, on_digits, NULL);
    if (rx == NULL) {
        fprintf(stderr, "dtmf_rx: dtmf_rx_init failed\n");
        return 2;
    }
    while ((n = fread(buf, sizeof(int16_t), 160, stdin)) > 0) {
        dtmf_rx(rx, buf, (int) n);
        position += (long long) n;
    }
    /* Flush: a digit still held at the end of the stream is reported after some silence. */
    int16_t silence[160] = {0};
    for (int i = 0; i < 10; i++) {
        dtmf_rx(rx, silence, 160);
        position += 160;
    }
    dtmf_rx_free(rx);
    return 0;
}
