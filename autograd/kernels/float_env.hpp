#pragma once
// Flush-to-zero / denormals-are-zero. Adam's second moments of dead ReLU units decay
// into denormal floats after a few hundred steps, and every arithmetic op on a
// denormal is ~100x slower on x86. Training and benchmarks turn this on by default.

namespace tapegrad {

/// Set FTZ and DAZ for the calling thread; returns the previous setting.
/// Only affects this thread's SSE/AVX arithmetic (not BLAS worker threads).
bool set_flush_denormals(bool on);
/// Whether FTZ and DAZ are on for the calling thread.
bool flush_denormals();

/// The calling thread's floating-point control word (x86 MXCSR: rounding, FTZ,
/// DAZ; 0 on other CPUs), so another thread can run with the same settings.
unsigned fp_control_word();
/// Set the calling thread's control word to one read by fp_control_word().
void set_fp_control_word(unsigned word);

/// Scope that sets flush-to-zero and restores the previous mode on exit.
class flush_denormals_scope {
  public:
    explicit flush_denormals_scope(bool on = true) : previous_(set_flush_denormals(on)) {}
    ~flush_denormals_scope() { set_flush_denormals(previous_); }
    flush_denormals_scope(const flush_denormals_scope&) = delete;
    flush_denormals_scope& operator=(const flush_denormals_scope&) = delete;

  private:
    bool previous_;
};

}  // namespace tapegrad
