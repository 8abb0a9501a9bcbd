// @EXPECTED_RESULTS@: WRONG-ANSWER
#include <stdio.h>
int main(void) {
    long long a, b;
    scanf("%lld %lld", &a, &b);
    printf("%lld\n", a - b); /* subtracts instead of adding */
    return 0;
}
