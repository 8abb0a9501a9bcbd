/* flood STREAMS BYTES: write BYTES bytes (or "forever") to STREAMS (stdout, stderr or both).
 * The byte at offset i of each stream is 'a' + i % 26, so a reader can check any prefix.
 * SIGPIPE is left at its default: a runner that stops reading kills us, which tests notice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PERIOD 26
#define CHUNK 65536

static char pattern[CHUNK + PERIOD];

/* Write up to CHUNK more bytes of the pattern to fd; returns the bytes written or -1. */
static long write_more(int fd, unsigned long long offset, unsigned long long remaining)
{
	size_t len = remaining < CHUNK ? (size_t)remaining : CHUNK;
	return write(fd, pattern + offset % PERIOD, len);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: flood stdout|stderr|both BYTES|forever\n");
		return 2;
	}
	int use_stdout = strcmp(argv[1], "stderr") != 0;
	int use_stderr = strcmp(argv[1], "stdout") != 0;
	int forever = strcmp(argv[2], "forever") == 0;
	unsigned long long total = forever ? ~0ULL : strtoull(argv[2], NULL, 10);

	for (size_t i = 0; i < sizeof pattern; i++) pattern[i] = 'a' + i % PERIOD;

	unsigned long long out_done = use_stdout ? 0 : total, err_done = use_stderr ? 0 : total;
	while (out_done < total || err_done < total) {
		if (out_done < total) {
			long n = write_more(1, out_done, total - out_done);
			if (n < 0) return 1;
			out_done += n;
		}
		if (err_done < total) {
			long n = write_more(2, err_done, total - err_done);
			if (n < 0) return 1;
			err_done += n;
		}
	}
	return 0;
}
