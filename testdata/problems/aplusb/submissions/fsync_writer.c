// @EXPECTED_RESULTS@: CORRECT
// Answers correctly after writing a file in its work dir and syncing it to the disk 40 times:
// each fdatasync sleeps in D state until the disk has the data, which the kernel's account of
// the run (judged/tests/run_kernel.rs) must show with the waiting kernel stack.
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    long long a, b;
    if (scanf("%lld %lld", &a, &b) != 2) return 1;
    static char block[64 << 10];
    int fd = open("synced", O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return 2;
    for (int i = 0; i < 40; i++) {
        memset(block, 'a' + i % 26, sizeof block);
        if (pwrite(fd, block, sizeof block, 0) != (ssize_t)sizeof block) return 3;
        if (fdatasync(fd) != 0) return 4;
    }
    close(fd);
    printf("%lld\n", a + b);
    return 0;
}
