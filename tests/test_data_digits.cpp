// The digits data set compiled into the library (data::load_digits) is the
// shipped file, row for row, and needs no path.

#include <cstdlib>

#include <doctest/doctest.h>

#include "data/dataset.hpp"

using namespace tapegrad::data;

TEST_CASE("the embedded digits equal data/digits.csv.gz") {
    const dataset file = load_digits_csv(digits_path());
    ::setenv("TAPEGRAD_DIGITS", "/nonexistent/digits.csv.gz", 1);  // only the file loader reads it
    const dataset embedded = load_digits();
    ::unsetenv("TAPEGRAD_DIGITS");
    CHECK(embedded.name == "digits");
    CHECK(embedded.size() == 1797);
    CHECK(embedded.features == 64);
    CHECK(embedded.num_classes() == 10);
    CHECK(embedded.x == file.x);
    CHECK(embedded.y == file.y);
}

TEST_CASE("parse_digits_csv names its source in errors") {
    const std::string text = "1,2,3\n";
    CHECK_THROWS_WITH(parse_digits_csv({text.begin(), text.end()}, "in-memory"),
                      doctest::Contains("in-memory: line 1"));
}
