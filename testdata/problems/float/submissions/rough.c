// @EXPECTED_RESULTS@: WRONG-ANSWER
// Three decimals are not within 1e-6.
#include <stdio.h>
int main(void) {
    double n;
    scanf("%lf", &n);
    printf("%.3f\n", 1.0 / n);
    return 0;
}
