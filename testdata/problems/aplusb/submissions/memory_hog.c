// @EXPECTED_RESULTS@: MEMORY-LIMIT
// Touches 64 MiB at a time until the cgroup's OOM killer stops it (malloc itself never fails:
// memory is overcommitted).
#include <stdlib.h>
#include <string.h>
int main(void) {
    for (;;) {
        char *chunk = malloc(64 << 20);
        if (chunk) memset(chunk, 1, 64 << 20);
    }
}
