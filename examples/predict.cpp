// SPDX-License-Identifier: MIT
// predict MODEL_FILE INPUT_FILE
// Loads a model saved by deltaprop (Python's net.save or dp_net_save) and prints its predictions for
// the rows of INPUT_FILE: whitespace-separated text, the first line "rows cols", then rows * cols
// numbers. Output: one row per line, values separated by spaces, "%.9g" for a float32 network and
// "%.17g" for a float64 one (both round-trip exactly).
#include <deltaprop/deltaprop.hpp>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

template <typename T> T parse_number(const std::string& token);
template <> float parse_number<float>(const std::string& token) {
    char* end = nullptr;  // subnormal input is accepted (ERANGE), overflow is not (inf)
    float v = std::strtof(token.c_str(), &end);
    if (end == token.c_str() || *end != '\0' || !std::isfinite(v))
        throw std::invalid_argument("input: not a finite float32 number: '" + token + "'");
    return v;
}
template <> double parse_number<double>(const std::string& token) {
    char* end = nullptr;
    double v = std::strtod(token.c_str(), &end);
    if (end == token.c_str() || *end != '\0' || !std::isfinite(v))
        throw std::invalid_argument("input: not a finite float64 number: '" + token + "'");
    return v;
}

std::size_t parse_count(const std::string& token, const char* what) {
    char* end = nullptr;
    errno = 0;
    unsigned long long v = std::strtoull(token.c_str(), &end, 10);
    if (token.empty() || token[0] == '-' || end == token.c_str() || *end != '\0' || errno == ERANGE)
        throw std::invalid_argument(std::string("input: bad ") + what + ": '" + token + "'");
    return static_cast<std::size_t>(v);
}

template <typename T>
void predict_file(const deltaprop::Network& net, std::ifstream& in, const char* format) {
    std::string token;
    if (!(in >> token)) throw std::invalid_argument("input: empty file, expected 'rows cols'");
    const std::size_t rows = parse_count(token, "row count");
    if (!(in >> token)) throw std::invalid_argument("input: missing the column count");
    const std::size_t cols = parse_count(token, "column count");
    const std::size_t n_in = net.n_in();
    const std::size_t n_out = net.n_out();
    if (cols != n_in)
        throw std::invalid_argument("input: expected " + std::to_string(n_in) + " columns, got " +
                                    std::to_string(cols));
    if (rows == 0) return;

    std::vector<T> x(rows * cols);  // [rows, n_in]
    for (std::size_t i = 0; i < x.size(); ++i) {
        if (!(in >> token))
            throw std::invalid_argument("input: expected " + std::to_string(x.size()) +
                                        " numbers, got " + std::to_string(i));
        x[i] = parse_number<T>(token);
    }
    if (in >> token) throw std::invalid_argument("input: more than rows * cols numbers");

    const std::vector<T> a = net.predict(x.data(), rows);  // [rows, n_out]
    for (std::size_t n = 0; n < rows; ++n) {
        for (std::size_t j = 0; j < n_out; ++j) {
            if (j) std::fputc(' ', stdout);
            std::printf(format, static_cast<double>(a[n * n_out + j]));
        }
        std::fputc('\n', stdout);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s MODEL_FILE INPUT_FILE\n", argc > 0 ? argv[0] : "predict");
        return 2;
    }
    try {
        const deltaprop::Network net = deltaprop::Network::load(argv[1]);
        std::ifstream in(argv[2]);
        if (!in) throw std::runtime_error(std::string("cannot open ") + argv[2]);
        if (net.dtype() == DP_FLOAT32)
            predict_file<float>(net, in, "%.9g");
        else
            predict_file<double>(net, in, "%.17g");
        if (std::fflush(stdout) != 0) throw std::runtime_error("cannot write the predictions");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "predict: %s\n", e.what());
        return 1;
    }
    return 0;
}
