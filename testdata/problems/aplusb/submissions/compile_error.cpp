// @EXPECTED_RESULTS@: COMPILE-ERROR
int main() {
    return undeclared_variable;
}
