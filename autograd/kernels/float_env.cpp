#include "autograd/kernels/float_env.hpp"

#if defined(__SSE__) || defined(__x86_64__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#define TAPEGRAD_HAVE_MXCSR 1
#endif

namespace tapegrad {

bool flush_denormals() {
#ifdef TAPEGRAD_HAVE_MXCSR
    return _MM_GET_FLUSH_ZERO_MODE() == _MM_FLUSH_ZERO_ON && _MM_GET_DENORMALS_ZERO_MODE() == _MM_DENORMALS_ZERO_ON;
#else
    return false;
#endif
}

bool set_flush_denormals(bool on) {
    const bool previous = flush_denormals();
#ifdef TAPEGRAD_HAVE_MXCSR
    _MM_SET_FLUSH_ZERO_MODE(on ? _MM_FLUSH_ZERO_ON : _MM_FLUSH_ZERO_OFF);
    _MM_SET_DENORMALS_ZERO_MODE(on ? _MM_DENORMALS_ZERO_ON : _MM_DENORMALS_ZERO_OFF);
#else
    (void)on;
#endif
    return previous;
}

unsigned fp_control_word() {
#ifdef TAPEGRAD_HAVE_MXCSR
    return _mm_getcsr();
#else
    return 0;
#endif
}

void set_fp_control_word(unsigned word) {
#ifdef TAPEGRAD_HAVE_MXCSR
    _mm_setcsr(word);
#else
    (void)word;
#endif
}

}  // namespace tapegrad
