// Output validator: `validate input answer feedback_dir < team_output`.
// Accepts (exit 42) two non-negative integers that sum to the input's n; else exit 43.
#include <fstream>
#include <iostream>
#include <string>

static int verdict(bool correct, const std::string &feedback_dir, const std::string &why) {
    std::ofstream(feedback_dir + "/judgemessage.txt") << why << "\n";
    return correct ? 42 : 43;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        std::cerr << "usage: validate input answer feedback_dir\n";
        return 1;
    }
    long long n = -1;
    std::ifstream(argv[1]) >> n;
    long long a, b;
    if (!(std::cin >> a >> b)) return verdict(false, argv[3], "expected two integers");
    std::string extra;
    if (std::cin >> extra) return verdict(false, argv[3], "trailing output: " + extra);
    if (a < 0 || b < 0) return verdict(false, argv[3], "negative part");
    if (a + b != n) return verdict(false, argv[3], "parts do not sum to n");
    return verdict(true, argv[3], "ok");
}
