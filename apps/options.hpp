#pragma once
// Strict reading of numbers and settings that people type (command-line
// options) or that come back from a file (a checkpoint's settings). One table
// lists every `train` setting with its option, its allowed values and its key
// in a checkpoint, so the command line, run_train and the checkpoint reader
// apply exactly the same rules and messages:
//   "--epochs must be a whole number from 1 to 100000, got 'abc'".

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/commands.hpp"

namespace tapegrad::app {

/// A bad option or setting. The message is complete: it names the option (or
/// the file and setting), the allowed values, and what was given.
class option_error : public std::invalid_argument {
  public:
    using std::invalid_argument::invalid_argument;
};

/// `text` as a whole number in [lo, hi]: decimal digits only (no sign, space,
/// fraction or exponent). `label` starts the message ("--epochs").
std::uint64_t parse_whole(const std::string& label, const std::string& text, std::uint64_t lo, std::uint64_t hi);

/// `text` as a finite number in [lo, hi], or (lo, hi] when `lo_open`. NaN and
/// infinity are refused wherever they are spelled.
double parse_real(const std::string& label, const std::string& text, double lo, double hi, bool lo_open = false);

/// "256,128": between 1 and `max_count` whole numbers in [lo, hi].
std::vector<std::size_t> parse_sizes(const std::string& label, const std::string& text, std::size_t lo,
                                     std::size_t hi, std::size_t max_count);

/// `text` if it is one of `choices`.
std::string parse_choice(const std::string& label, const std::string& text, const std::vector<std::string>& choices);

/// One `train` setting: its option, its key in a checkpoint, and how to read
/// (with validation) and print it.
struct train_setting {
    std::string key;     ///< "step_size": the key in a checkpoint's settings
    std::string flag;    ///< "--step-size"
    bool saved;          ///< kept in a checkpoint and restored on --resume
    std::string help;    ///< --help text, with the allowed values
    /// Parse `text` into `o`, throwing option_error whose message starts with `label`.
    std::function<void(train_options& o, const std::string& text, const std::string& label)> set;
    /// The value in `o` as text that `set` reads back.
    std::function<std::string(const train_options& o)> get;
};

/// Every `train` setting that takes a value, in --help order. `model` comes
/// before `layers`, whose rule depends on it.
const std::vector<train_setting>& train_settings();

/// Check every setting of `o` against the table (programmatic callers of
/// run_train get the command line's messages). `batch_size` 0 is allowed (the
/// data set's default).
void validate_train_options(const train_options& o);

/// Settings as "key" -> "value" text, as a checkpoint stores them.
using config_map = std::map<std::string, std::string>;

/// The saved settings of `o`.
config_map to_config(const train_options& o);

/// Restore the saved settings from `c` into `o`, validating each one. A
/// missing, unknown or invalid setting throws option_error naming `file` and
/// the setting. Keys in `extra_keys` are allowed and left to the caller.
void from_config(const config_map& c, train_options& o, const std::string& file,
                 const std::vector<std::string>& extra_keys = {});

/// "key=value\n" lines.
std::string config_text(const config_map& c);
/// Parse config_text's output; a line without '=', an empty or repeated key, or a
/// control character throws option_error naming `file`.
config_map parse_config_text(const std::string& s, const std::string& file);

}  // namespace tapegrad::app
