// @EXPECTED_RESULTS@: RUN-ERROR
// Prints the right answer but `return -1` from main: exit status 255, which is also runguard's
// own failure status; the judge must still see the program's failure, not a judge error.
#include <stdio.h>
int main(void) {
    long long a, b;
    if (scanf("%lld %lld", &a, &b) != 2) return 0;
    printf("%lld\n", a + b);
    return -1;
}
