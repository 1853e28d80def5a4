#pragma once
// Reading the text fixtures that scripts/make_*_fixtures.py write with torch:
// lines of whitespace-separated words and numbers; '#' starts a comment line.

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace tapegrad::testing {

/// The non-empty, non-comment lines of a fixture file (fails the test if it cannot be opened).
inline std::vector<std::string> lines_of(const std::string& path) {
    std::ifstream f(path);
    REQUIRE_MESSAGE(f.good(), "cannot open fixture " << path);
    std::vector<std::string> out;
    for (std::string l; std::getline(f, l);)
        if (!l.empty() && l[0] != '#') out.push_back(l);
    return out;
}

/// The rest of the stream as numbers.
inline std::vector<double> numbers(std::istringstream& is) {
    std::vector<double> v;
    for (double x; is >> x;) v.push_back(x);
    return v;
}

}  // namespace tapegrad::testing
