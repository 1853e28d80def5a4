// tapegrad_proto_sum_to: a proposed replacement for autograd's detail::sum_to
// (docs/benchmarks.md, finding 4), checked here against the real one on 3000
// random shape pairs in both modes (overwrite, accumulate) and timed on
// [256, 1024] float; and its reverse, the broadcast of a reduced gradient back to
// the input's shape, checked against xt::broadcast. The engine's version is 25-30x slower for row and full sums
// because it does per-element axis bookkeeping; this one merges adjacent axes that
// are all kept or all reduced and then works on contiguous runs.
// Limits of the prototype: rank <= 16, and no shape checks (the engine keeps its own).
#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>
#include <xtensor/xarray.hpp>
#include <xtensor/xbroadcast.hpp>
#include <xtensor/xnoalias.hpp>
#include "autograd/detail/record.hpp"

namespace {

using shp = std::vector<std::size_t>;

// dst (+)= src summed over the axes where dst has extent 1 (or which dst lacks).
// Adjacent axes with the same kept/reduced status are merged first, so the work is
// a few nested loops over contiguous runs: the innermost run is either summed with
// 8 accumulators (reduced) or added elementwise (kept); outer blocks use a small
// odometer over the merged dims only.
template <class T>
void sum_to_fast(const T* in, const shp& ss, T* out, const shp& ds_in, bool accumulate, std::size_t out_size) {
    const std::size_t rank = ss.size(), lead = rank - ds_in.size();
    if (!accumulate) std::fill(out, out + out_size, T(0));
    // merged blocks: extent and whether kept
    std::size_t ext[16]; bool kept[16]; std::size_t nb = 0;
    for (std::size_t i = 0; i < rank; ++i) {
        const bool k = i >= lead && ds_in[i - lead] == ss[i] && ss[i] != 1;
        if (ss[i] == 1) continue;  // size-1 axes change nothing
        if (nb && kept[nb - 1] == k) ext[nb - 1] *= ss[i];
        else { ext[nb] = ss[i]; kept[nb] = k; ++nb; }
    }
    std::size_t total = 1;
    for (std::size_t b = 0; b < nb; ++b) total *= ext[b];
    if (total == 0) return;
    if (nb == 0) { out[0] += in[0]; return; }
    const std::size_t inner = ext[nb - 1];
    const bool inner_kept = kept[nb - 1];
    // out stride of each outer block (0 for reduced), in row-major order of kept extents
    std::size_t ostride[16]; std::size_t s = inner_kept ? inner : 1;
    for (std::size_t b = nb - 1; b-- > 0;) { ostride[b] = kept[b] ? s : 0; if (kept[b]) s *= ext[b]; }
    std::size_t idx[16] = {0}; std::size_t off = 0;
    const std::size_t runs = total / inner;
    for (std::size_t r = 0; r < runs; ++r) {
        const T* p = in + r * inner;
        if (inner_kept) {
            T* o = out + off;
            for (std::size_t j = 0; j < inner; ++j) o[j] += p[j];
        } else {
            T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            const std::size_t full = inner / 8 * 8;
            for (std::size_t j = 0; j < full; j += 8)
                for (int k = 0; k < 8; ++k) acc[k] += p[j + k];
            T t = 0;
            for (std::size_t j = full; j < inner; ++j) t += p[j];
            for (T a : acc) t += a;
            out[off] += t;
        }
        for (std::size_t b = nb - 1; b-- > 0;) {  // odometer over outer blocks
            if (++idx[b] < ext[b]) { off += ostride[b]; break; }
            off -= ostride[b] * (ext[b] - 1);
            idx[b] = 0;
        }
    }
}


// The reverse: dst[ss] (+)= g broadcast from its shape ds (a suffix-aligned shape
// with 1s where dst is larger), as sum_backward and every "gy broadcast back over
// the reduced axes" needs. Same merged blocks; the innermost run is either a copy
// (kept) or a fill with one value (reduced).
template <class T>
void broadcast_add_fast(const T* g, const shp& ds_in, T* out, const shp& ss, bool accumulate) {
    const std::size_t rank = ss.size(), lead = rank - ds_in.size();
    std::size_t ext[16]; bool kept[16]; std::size_t nb = 0;
    for (std::size_t i = 0; i < rank; ++i) {
        const bool k = i >= lead && ds_in[i - lead] == ss[i] && ss[i] != 1;
        if (ss[i] == 1) continue;
        if (nb && kept[nb - 1] == k) ext[nb - 1] *= ss[i];
        else { ext[nb] = ss[i]; kept[nb] = k; ++nb; }
    }
    std::size_t total = 1;
    for (std::size_t b = 0; b < nb; ++b) total *= ext[b];
    if (total == 0) return;
    if (nb == 0) { out[0] = accumulate ? out[0] + g[0] : g[0]; return; }
    const std::size_t inner = ext[nb - 1];
    const bool inner_kept = kept[nb - 1];
    std::size_t gstride[16]; std::size_t s = inner_kept ? inner : 1;
    for (std::size_t b = nb - 1; b-- > 0;) { gstride[b] = kept[b] ? s : 0; if (kept[b]) s *= ext[b]; }
    std::size_t idx[16] = {0}; std::size_t off = 0;
    const std::size_t runs = total / inner;
    for (std::size_t r = 0; r < runs; ++r) {
        T* o = out + r * inner;
        if (inner_kept) {
            const T* p = g + off;
            if (accumulate) for (std::size_t j = 0; j < inner; ++j) o[j] += p[j];
            else std::copy(p, p + inner, o);
        } else {
            const T v = g[off];
            if (accumulate) for (std::size_t j = 0; j < inner; ++j) o[j] += v;
            else std::fill(o, o + inner, v);
        }
        for (std::size_t b = nb - 1; b-- > 0;) {
            if (++idx[b] < ext[b]) { off += gstride[b]; break; }
            off -= gstride[b] * (ext[b] - 1);
            idx[b] = 0;
        }
    }
}

}  // namespace

int main() {
    std::mt19937 rng(3);
    std::uniform_int_distribution<int> dim(1, 5), coin(0, 2);
    std::normal_distribution<double> g;
    int bad = 0, tests = 0;
    for (int trial = 0; trial < 3000; ++trial) {
        std::size_t rank = 1 + trial % 4;
        shp ss(rank);
        for (auto& v : ss) v = dim(rng);
        std::size_t drop = coin(rng) % (rank + 1);
        shp ds;
        for (std::size_t i = drop; i < rank; ++i) ds.push_back(coin(rng) ? ss[i] : 1);
        xt::xarray<double> src = xt::xarray<double>::from_shape(ss);
        for (auto& v : src) v = g(rng);
        xt::xarray<double> ref;
        typename xt::xarray<double>::shape_type dss(ds.begin(), ds.end());
        tapegrad::detail::sum_to<double>(src, ref, dss, false);
        std::vector<double> got(ref.size());
        sum_to_fast<double>(src.data(), ss, got.data(), ds, false, got.size());
        for (std::size_t i = 0; i < got.size(); ++i)
            if (std::abs(got[i] - ref.data()[i]) > 1e-9) { ++bad; break; }
        // accumulate mode
        std::vector<double> acc(ref.size(), 1.0);
        sum_to_fast<double>(src.data(), ss, acc.data(), ds, true, acc.size());
        for (std::size_t i = 0; i < acc.size(); ++i)
            if (std::abs(acc[i] - 1.0 - ref.data()[i]) > 1e-9) { ++bad; break; }
        // broadcast back: ref_b = broadcast(ref reshaped to ds) to ss
        {
            xt::xarray<double> g = ref;  // shape ds
            xt::xarray<double> want = xt::broadcast(g, ss);
            std::vector<double> b(want.size());
            broadcast_add_fast<double>(g.data(), ds, b.data(), ss, false);
            for (std::size_t i = 0; i < b.size(); ++i)
                if (std::abs(b[i] - want.data()[i]) > 1e-12) { ++bad; break; }
        }
        ++tests;
    }
    std::printf("%d shape pairs, %d mismatches\n", tests, bad);
    if (bad) return 1;
    // speed on [256, 1024] float
    xt::xarray<float> x = xt::xarray<float>::from_shape({256, 1024});
    for (auto& v : x) v = static_cast<float>(g(rng));
    for (auto ds : {shp{}, shp{256, 1}, shp{1024}, shp{1, 1}}) {
        typename xt::xarray<float>::shape_type dss(ds.begin(), ds.end());
        xt::xarray<float> ref;
        std::vector<float> out(std::max<std::size_t>(1, ds.empty() ? 1 : (ds[0] * (ds.size() > 1 ? ds[1] : 1))));
        auto time = [&](auto&& f) {
            std::vector<double> t;
            for (int r = 0; r < 21; ++r) {
                auto t0 = std::chrono::steady_clock::now();
                f();
                t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
            }
            std::sort(t.begin(), t.end());
            return t[10] * 1e6;
        };
        double a = time([&] { tapegrad::detail::sum_to<float>(x, ref, dss, false); });
        double b = time([&] { sum_to_fast<float>(x.data(), {256, 1024}, out.data(), ds, false, out.size()); });
        std::printf("[256, 1024] -> rank %zu %s: detail::sum_to %.1f us, runs %.1f us\n", ds.size(),
                    ds.empty() ? "[]" : (ds.size() == 2 ? (ds[0] == 256 ? "[256,1]" : "[1,1]") : "[1024]"), a, b);
        xt::xarray<float> g = ref, y = xt::xarray<float>::from_shape({256, 1024});
        double c = time([&] { xt::noalias(y) = xt::broadcast(g, y.shape()); });
        double d = time([&] { broadcast_add_fast<float>(g.data(), ds, y.data(), {256, 1024}, false); });
        std::printf("    and back (as sum_backward): xt::broadcast %.1f us, runs %.1f us\n", c, d);
    }
}
