// @EXPECTED_RESULTS@: CORRECT
// Leaves a file in /tmp, then answers correctly. The sandbox gives each run a private /tmp, so
// the write succeeds but nothing reaches the host's /tmp: the end-to-end test checks that
// /tmp/judged-escape-marker does not exist on the host afterwards.
#include <stdio.h>
int main(void) {
    FILE *marker = fopen("/tmp/judged-escape-marker", "w");
    if (marker == NULL || fputs("written by a submission\n", marker) == EOF || fclose(marker) != 0)
        return 1;
    long long a, b;
    if (scanf("%lld %lld", &a, &b) != 2) return 1;
    printf("%lld\n", a + b);
    return 0;
}
