// @EXPECTED_RESULTS@: TIMELIMIT
int main(void) {
    volatile unsigned long spin = 0;
    for (;;) spin++;
}
