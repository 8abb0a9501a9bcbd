// @EXPECTED_RESULTS@: RUN-ERROR
#include <stdio.h>
int main(void) {
    volatile int zero = 0;
    printf("%d\n", 1 / zero);
    return 0;
}
