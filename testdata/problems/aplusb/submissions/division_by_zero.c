// @EXPECTED_RESULTS@: RUN-ERROR
// Divides the input by zero: SIGFPE. The dividend comes from the input, because gcc folds
// `1 / x` into a comparison that never traps.
#include <stdio.h>
int main(void) {
    volatile int zero = 0;
    int a, b;
    if (scanf("%d %d", &a, &b) != 2) return 0;
    printf("%d\n", a / zero);
    return 0;
}
