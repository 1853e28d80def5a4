// Prints the audit of the article's hand-derived backpropagation formulas
// (formulas/audit.hpp): which hold, by how much, and the corrected ones.
// Usage: article_audit [seed]

#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>

#include "formulas/audit.hpp"

int main(int argc, char** argv) {
    try {
        unsigned seed = 2024;
        if (argc > 1) {
            char* end = nullptr;
            const unsigned long v = std::strtoul(argv[1], &end, 10);
            if (end == argv[1] || *end != '\0') {
                std::cerr << "article_audit: the seed must be a non-negative integer, got '" << argv[1] << "'\n";
                return 2;
            }
            seed = static_cast<unsigned>(v);
        }
        const auto result = tapegrad::formulas::run_audit(seed);
        std::cout << tapegrad::formulas::audit_report(result);
        return result.all_corrected_hold() ? 0 : 1;
    } catch (const std::exception& e) {
        std::cerr << "article_audit: " << e.what() << '\n';
        return 1;
    }
}
