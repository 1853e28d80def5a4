// The embedded digits data set: data/digits.csv.gz compiled in as bytes
// (cmake/embed.cmake), read by the same code as the file.

#include <cstddef>

#include "data/dataset.hpp"

namespace tapegrad::data {

namespace embedded {
extern const unsigned char digits_csv_gz[];
extern const std::size_t digits_csv_gz_size;
}  // namespace embedded

dataset load_digits() {
    const std::string name = "embedded digits.csv.gz";
    return load_digits_csv(embedded::digits_csv_gz, embedded::digits_csv_gz_size, name);
}

}  // namespace tapegrad::data
