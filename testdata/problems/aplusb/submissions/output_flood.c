// @EXPECTED_RESULTS@: OUTPUT-LIMIT
// Writes 64 MiB (the limit is 8 MiB) and ends: the cut stream alone decides.
#include <stdio.h>
#include <string.h>
int main(void) {
    static char line[1 << 20];
    memset(line, '7', sizeof line);
    for (int i = 0; i < 64; i++) fwrite(line, 1, sizeof line, stdout);
    return 0;
}
