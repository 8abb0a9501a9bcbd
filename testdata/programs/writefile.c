/* writefile PATH BYTES: create PATH and write BYTES bytes (or "forever") to it. Over RLIMIT_FSIZE
 * the kernel sends SIGXFSZ (exit status 153); a refused open or write exits 1 with a message. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: writefile PATH BYTES|forever\n");
		return 2;
	}
	int forever = strcmp(argv[2], "forever") == 0;
	unsigned long long remaining = forever ? ~0ULL : strtoull(argv[2], NULL, 10);
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		printf("open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	char block[4096];
	memset(block, 'x', sizeof block);
	while (remaining > 0) {
		size_t len = remaining < sizeof block ? (size_t)remaining : sizeof block;
		ssize_t n = write(fd, block, len);
		if (n < 0) {
			printf("write %s: %s\n", argv[1], strerror(errno));
			return 1;
		}
		remaining -= n;
	}
	return close(fd) == 0 ? 0 : 1;
}
