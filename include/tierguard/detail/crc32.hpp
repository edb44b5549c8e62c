#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>

// 1: x86-64 with GCC or clang, where crc32_clmul and crc32_vclmul exist (the CPU is still
// checked at run time); define it to 0 before including tierguard to compute every CRC by crc32_portable.
#ifndef TIERGUARD_CRC32_CLMUL
#if defined(__x86_64__) && defined(__GNUC__)
#define TIERGUARD_CRC32_CLMUL 1
#else
#define TIERGUARD_CRC32_CLMUL 0
#endif
#endif
#if TIERGUARD_CRC32_CLMUL
// Not <immintrin.h>: it costs ~100 MB and ~0.3 s per translation unit. The 128-bit path
// needs SSE2, SSSE3 and PCLMULQDQ only; the 256-bit path uses vector extensions (v4x64 below).
#include <emmintrin.h>
#include <tmmintrin.h>
#include <wmmintrin.h>
#endif

namespace tierguard::detail {

namespace crc32_table_detail {

// The register after one byte, for each byte value: the classic table of the reflected
// polynomial 0xEDB88320.
[[nodiscard]] constexpr std::array<std::uint32_t, 256> byte_table() noexcept {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int bit = 0; bit < 8; ++bit) c = (c & 1U) != 0 ? (c >> 1) ^ 0xEDB88320U : c >> 1;
        t[i] = c;
    }
    return t;
}

inline constexpr std::array<std::uint32_t, 256> table = byte_table();

// Slicing-by-8 (Kounavis and Berry): tables[k][b] is the register after byte b followed by k
// zero bytes, so that eight bytes take eight independent lookups instead of eight dependent ones.
[[nodiscard]] constexpr std::array<std::array<std::uint32_t, 256>, 8> slice_tables() noexcept {
    std::array<std::array<std::uint32_t, 256>, 8> t{};
    t[0] = byte_table();
    for (std::size_t k = 1; k < 8; ++k)
        for (std::size_t i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFFU];
    return t;
}

inline constexpr std::array<std::array<std::uint32_t, 256>, 8> slices = slice_tables();

// The inverted register `c` after `size` bytes (size < 32 in use), eight at a time, then
// four, then one by one.
[[nodiscard]] inline std::uint32_t short_update(std::uint32_t c, const std::byte* data, std::size_t size) noexcept {
    for (; size >= 8; data += 8, size -= 8) {
        std::uint64_t w = 0;
        for (std::size_t i = 0; i < 8; ++i) w |= std::uint64_t{std::to_integer<std::uint8_t>(data[i])} << (8 * i);
        w ^= c;
        c = slices[7][w & 0xFFU] ^ slices[6][(w >> 8) & 0xFFU] ^ slices[5][(w >> 16) & 0xFFU] ^
            slices[4][(w >> 24) & 0xFFU] ^ slices[3][(w >> 32) & 0xFFU] ^ slices[2][(w >> 40) & 0xFFU] ^
            slices[1][(w >> 48) & 0xFFU] ^ slices[0][w >> 56];
    }
    if (size >= 4) {
        std::uint32_t w = c;
        for (std::size_t i = 0; i < 4; ++i) w ^= std::uint32_t{std::to_integer<std::uint8_t>(data[i])} << (8 * i);
        c = slices[3][w & 0xFFU] ^ slices[2][(w >> 8) & 0xFFU] ^ slices[1][(w >> 16) & 0xFFU] ^ slices[0][w >> 24];
        data += 4;
        size -= 4;
    }
    for (std::size_t i = 0; i < size; ++i) c = table[(c ^ static_cast<std::uint32_t>(data[i])) & 0xFFU] ^ (c >> 8);
    return c;
}

}  // namespace crc32_table_detail

/// zlib's crc32() over any length: the CRC-32 of ISO-HDLC (reflected polynomial
/// 0xEDB88320, initial and final value inverted), continued from `crc` (0 to start).
/// Returns `crc` for an empty buffer. Chained calls equal one call over the concatenation.
/// Short buffers (record heads) go through tables here, eight bytes a step (slicing-by-8);
/// a call into zlib costs more than they do.
[[nodiscard]] inline std::uint32_t crc32_portable(std::uint32_t crc, const std::byte* data, std::size_t size) noexcept {
    if (size < 32) return ~crc32_table_detail::short_update(~crc, data, size);
    uLong c = crc;
    const auto* p = reinterpret_cast<const Bytef*>(data);
    while (size > 0) {
        const std::size_t n = std::min<std::size_t>(size, std::numeric_limits<uInt>::max());
        c = ::crc32(c, p, static_cast<uInt>(n));
        p += n;
        size -= n;
    }
    return static_cast<std::uint32_t>(c);
}

namespace crc32_constants {

// Notation. A polynomial f over GF(2) of degree < n is held "reflected" in n bits:
// bit i holds the coefficient of x^(n-1-i). zlib's 32-bit CRC register is I32, a byte
// stream loaded little-endian into an SSE register is I128 (its first byte holds the
// highest powers), a 64-bit lane is I64. A CRC register s after a message M (initial
// register value s0 folded into M's first 32 bits) is M(x) * x^32 mod P(x).

/// P(x) = x^32 + the polynomial of 0x04C11DB7; its terms below x^32, reflected (I32).
inline constexpr std::uint32_t reflected_poly = 0xEDB88320U;

/// x^n mod P as I32: starting from 1 (I32 = 0x80000000), multiply by x n times.
/// Multiplying by x moves every coefficient one bit down; a coefficient of x^32 leaving
/// bit 0 is replaced by P's lower terms, since x^32 = P - x^32 (mod P).
[[nodiscard]] constexpr std::uint32_t x_pow_mod(unsigned n) noexcept {
    std::uint32_t v = 0x80000000U;
    for (unsigned i = 0; i < n; ++i) v = (v & 1U) != 0 ? (v >> 1) ^ reflected_poly : v >> 1;
    return v;
}

/// A polynomial of degree < 32 given as I32, as I64: the same coefficients, 32 bits up.
[[nodiscard]] constexpr std::uint64_t lane(std::uint32_t i32) noexcept { return std::uint64_t{i32} << 32; }

/// Reverses the low 33 bits: a degree-32 polynomial g written plainly (bit d = x^d) gives
/// I64(g * x^31), since coefficient d sits at bit 63 - (d + 31) = 32 - d.
[[nodiscard]] constexpr std::uint64_t reverse33(std::uint64_t plain) noexcept {
    std::uint64_t r = 0;
    for (unsigned d = 0; d <= 32; ++d)
        if (((plain >> d) & 1U) != 0) r |= std::uint64_t{1} << (32 - d);
    return r;
}

/// P written plainly: bit d = coefficient of x^d.
inline constexpr std::uint64_t plain_poly = 0x104C11DB7ULL;

/// mu = floor(x^64 / P) written plainly, by long division (degree 32).
[[nodiscard]] constexpr std::uint64_t barrett_mu() noexcept {
    std::uint64_t rem = 0;
    std::uint64_t quotient = 0;
    for (int d = 64; d >= 0; --d) {  // the dividend x^64 has one bit, at degree 64
        rem = (rem << 1) | (d == 64 ? 1U : 0U);
        const bool q = ((rem >> 32) & 1U) != 0;
        if (q) rem ^= plain_poly;
        quotient = (quotient << 1) | (q ? 1U : 0U);
    }
    return quotient;
}

// pclmulqdq of two lanes gives I128(x * f * g): the extra x is why each constant below is
// one power short. Folding a register R = A*x^64 + B (A in the low lane) forward by N bits
// uses A*x^(N+64) = A * (x^(N+63) mod P) * x and B*x^N = B * (x^(N-1) mod P) * x; each
// product has degree < 96, so it fits the register and the result stays congruent.
// The lanes left after the main loop move to the end each by its own distance, in parallel
// (one multiply's latency rather than three in a row): hence 1536, 768 and 384 too.
inline constexpr std::uint64_t fold2048_lo = lane(x_pow_mod(2048 + 63));
inline constexpr std::uint64_t fold2048_hi = lane(x_pow_mod(2048 - 1));
inline constexpr std::uint64_t fold1536_lo = lane(x_pow_mod(1536 + 63));
inline constexpr std::uint64_t fold1536_hi = lane(x_pow_mod(1536 - 1));
inline constexpr std::uint64_t fold1024_lo = lane(x_pow_mod(1024 + 63));
inline constexpr std::uint64_t fold1024_hi = lane(x_pow_mod(1024 - 1));
inline constexpr std::uint64_t fold768_lo = lane(x_pow_mod(768 + 63));
inline constexpr std::uint64_t fold768_hi = lane(x_pow_mod(768 - 1));
inline constexpr std::uint64_t fold512_lo = lane(x_pow_mod(512 + 63));
inline constexpr std::uint64_t fold512_hi = lane(x_pow_mod(512 - 1));
inline constexpr std::uint64_t fold384_lo = lane(x_pow_mod(384 + 63));
inline constexpr std::uint64_t fold384_hi = lane(x_pow_mod(384 - 1));
inline constexpr std::uint64_t fold256_lo = lane(x_pow_mod(256 + 63));
inline constexpr std::uint64_t fold256_hi = lane(x_pow_mod(256 - 1));
inline constexpr std::uint64_t fold128_lo = lane(x_pow_mod(128 + 63));
inline constexpr std::uint64_t fold128_hi = lane(x_pow_mod(128 - 1));
// Final reduction of R*x^32: A*x^96 via x^95, then the upper 32 bits of the result via x^63.
inline constexpr std::uint64_t reduce96 = lane(x_pow_mod(95));
inline constexpr std::uint64_t reduce64 = lane(x_pow_mod(63));
// Barrett: for V of degree < 64, floor(V / P) = floor(floor(V / x^32) * mu / x^32), exact
// over GF(2). Both are taken times x^31 so that the products land on lane boundaries.
inline constexpr std::uint64_t mu_x31 = reverse33(barrett_mu());
inline constexpr std::uint64_t poly_x31 = reverse33(plain_poly);

// Cross-checks against the values published for this polynomial (Gopal et al., "Fast CRC
// Computation for Generic Polynomials Using PCLMULQDQ", Intel, 2009): mu and the reflected
// Barrett pair; x^32 mod P is P's lower terms.
static_assert(x_pow_mod(0) == 0x80000000U && x_pow_mod(32) == reflected_poly);
static_assert(barrett_mu() == 0x104D101DFULL && mu_x31 == 0x1F7011641ULL && poly_x31 == 0x1DB710641ULL);

}  // namespace crc32_constants

#if TIERGUARD_CRC32_CLMUL

namespace crc32_clmul_detail {

// 0: neither, 1: PCLMULQDQ and SSSE3, 2: also AVX2 and VPCLMULQDQ, 3: also AVX-512F. Asked once, then cached.
[[nodiscard]] inline int cpu_level() noexcept {
    static const int level = [] {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("pclmul") == 0 || __builtin_cpu_supports("ssse3") == 0) return 0;
        if (__builtin_cpu_supports("avx2") == 0 || __builtin_cpu_supports("vpclmulqdq") == 0) return 1;
        return __builtin_cpu_supports("avx512f") != 0 ? 3 : 2;
    }();
    return level;
}

}  // namespace crc32_clmul_detail

/// Whether this CPU has carry-less multiply (PCLMULQDQ) and SSSE3: crc32_clmul may run.
[[nodiscard]] inline bool crc32_clmul_supported() noexcept { return crc32_clmul_detail::cpu_level() >= 1; }

/// Whether this CPU also has AVX2 and VPCLMULQDQ: crc32_vclmul may run.
[[nodiscard]] inline bool crc32_vclmul_supported() noexcept { return crc32_clmul_detail::cpu_level() >= 2; }

/// Whether this CPU also has AVX-512F: crc32_zclmul may run.
[[nodiscard]] inline bool crc32_zclmul_supported() noexcept { return crc32_clmul_detail::cpu_level() >= 3; }

namespace crc32_clmul_detail {

// R * x^N + next, N given by the constant pair (see crc32_constants).
[[nodiscard]] __attribute__((target("pclmul"))) inline __m128i fold(__m128i r, __m128i k, __m128i next) noexcept {
    return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(r, k, 0x00), _mm_clmulepi64_si128(r, k, 0x11)), next);
}

[[nodiscard]] __attribute__((target("pclmul"))) inline __m128i load(const std::byte* p) noexcept {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
}

// The CRC register of a message congruent to R: R * x^32 mod P, as I32.
[[nodiscard]] __attribute__((target("pclmul"))) inline std::uint32_t reduce(__m128i r) noexcept {
    namespace k = crc32_constants;
    const __m128i k96_64 = _mm_set_epi64x(static_cast<long long>(k::reduce64), static_cast<long long>(k::reduce96));
    // R*x^32 = A*x^96 + B*x^32: A times x^95 mod P (times x), B moved 32 bits down.
    const __m128i b_x32 = _mm_slli_si128(_mm_srli_si128(r, 8), 4);
    const __m128i u = _mm_xor_si128(_mm_clmulepi64_si128(r, k96_64, 0x00), b_x32);  // degree < 96
    // U = Uh*x^64 + Ul, Uh of degree < 32 in the low lane: V = Uh*(x^64 mod P) + Ul, in the high lane.
    const __m128i v = _mm_xor_si128(_mm_clmulepi64_si128(u, k96_64, 0x10), u);
    // Barrett. High lane shifted up 32 bits = I64(floor(V / x^32)); times I64(mu*x^31)
    // that is I128(x^32 * Vh * mu), whose low lane is I64(q), q = floor(Vh * mu / x^32).
    const __m128i barrett = _mm_set_epi64x(static_cast<long long>(k::poly_x31), static_cast<long long>(k::mu_x31));
    const __m128i q = _mm_clmulepi64_si128(_mm_slli_epi64(v, 32), barrett, 0x01);
    // I128(x^32 * q * P): the coefficients of q*P below x^32 are in bits 0..31 of the
    // high lane, where V's low 32 coefficients land when the high lane moves down 32 bits.
    const __m128i qp = _mm_clmulepi64_si128(q, barrett, 0x10);
    const __m128i s = _mm_xor_si128(qp, _mm_srli_epi64(v, 32));
    return static_cast<std::uint32_t>(_mm_cvtsi128_si32(_mm_srli_si128(s, 8)));
}

// pshufb controls: the 16 bytes from offset t move a register's bytes up by 16 - t (zeros
// below: 0x80 selects zero); those from offset 16 + t move them down by t, with 0x80 (high
// bit set) where the bytes that came in from above would be.
inline constexpr std::uint8_t shift_controls[48] = {
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0,    1,    2,    3,    4,    5,    6,    7,    8,    9,    10,   11,   12,   13,   14,   15,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80};

[[nodiscard]] __attribute__((target("pclmul,ssse3"))) inline __m128i control(std::size_t at) noexcept {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(shift_controls + at));
}

// a * x^384 + b * x^256 + c * x^128 + d: four consecutive 16-byte lanes folded into one.
[[nodiscard]] __attribute__((target("pclmul"))) inline __m128i fold_four(__m128i a, __m128i b, __m128i c,
                                                                         __m128i d) noexcept {
    namespace k = crc32_constants;
    const __m128i k384 = _mm_set_epi64x(static_cast<long long>(k::fold384_hi), static_cast<long long>(k::fold384_lo));
    const __m128i k256 = _mm_set_epi64x(static_cast<long long>(k::fold256_hi), static_cast<long long>(k::fold256_lo));
    const __m128i k128 = _mm_set_epi64x(static_cast<long long>(k::fold128_hi), static_cast<long long>(k::fold128_lo));
    return fold(a, k384, fold(b, k256, fold(c, k128, d)));
}

// The 16 bytes at in + at; with Copy also stored at out + at: a copy made while the CRC is
// computed reads each byte once.
template <bool Copy>
[[nodiscard]] __attribute__((target("pclmul"))) inline __m128i take(const std::byte* in, std::byte* out,
                                                                    std::size_t at) noexcept {
    const __m128i v = load(in + at);
    if constexpr (Copy) _mm_storeu_si128(reinterpret_cast<__m128i*>(out + at), v);
    return v;
}

// The end both widths share: R folded over the remaining 16-byte blocks of [at, size), then
// over the last (size - at) % 16 = t bytes, and reduced. at >= 16. The message R, tail is R's
// first t bytes (X, zeros in front: the same polynomial) times x^128 plus its last 16 bytes
// (Y: R's other 16 - t bytes, then the tail, read by one load that ends at the message's
// end): one more fold, no byte-by-byte end (Gopal et al., 2009).
template <bool Copy>
[[nodiscard]] __attribute__((target("pclmul,ssse3"))) inline std::uint32_t finish(__m128i r, const std::byte* in,
                                                                                  std::byte* out, std::size_t at,
                                                                                  std::size_t size) noexcept {
    namespace k = crc32_constants;
    const __m128i k128 = _mm_set_epi64x(static_cast<long long>(k::fold128_hi), static_cast<long long>(k::fold128_lo));
    for (; size - at >= 16; at += 16) r = fold(r, k128, take<Copy>(in, out, at));
    if (const std::size_t t = size - at; t > 0) {
        const __m128i down = control(16 + t);
        const __m128i from_tail = _mm_cmplt_epi8(down, _mm_setzero_si128());
        const __m128i x = _mm_shuffle_epi8(r, control(t));
        // The last 16 bytes, stored again where they were copied already: the same bytes.
        const __m128i y =
            _mm_or_si128(_mm_shuffle_epi8(r, down), _mm_and_si128(from_tail, take<Copy>(in, out, size - 16)));
        r = fold(x, k128, y);
    }
    return ~reduce(r);
}

// crc32_clmul, and with Copy the bytes stored at `out` too.
template <bool Copy>
[[nodiscard]] __attribute__((target("pclmul,ssse3"))) inline std::uint32_t clmul(std::uint32_t crc, const std::byte* in,
                                                                                 std::byte* out,
                                                                                 std::size_t size) noexcept {
    namespace k = crc32_constants;
    if (size < 16) {
        if constexpr (Copy)
            if (size > 0) std::memcpy(out, in, size);
        return crc32_portable(crc, in, size);
    }
    // zlib keeps the register inverted between calls; the register goes into the first 4 bytes.
    const __m128i first = _mm_xor_si128(take<Copy>(in, out, 0), _mm_cvtsi32_si128(static_cast<int>(~crc)));
    if (size < 64) return finish<Copy>(first, in, out, 16, size);
    const __m128i k512 = _mm_set_epi64x(static_cast<long long>(k::fold512_hi), static_cast<long long>(k::fold512_lo));
    __m128i r[4] = {first, take<Copy>(in, out, 16), take<Copy>(in, out, 32), take<Copy>(in, out, 48)};
    std::size_t at = 64;
    for (; size - at >= 64; at += 64) {
        // Unrolled, so that the four lanes stay in registers.
#pragma GCC unroll 4
        for (std::size_t i = 0; i < 4; ++i) r[i] = fold(r[i], k512, take<Copy>(in, out, at + 16 * i));
    }
    return finish<Copy>(fold_four(r[0], r[1], r[2], r[3]), in, out, at, size);
}

}  // namespace crc32_clmul_detail

/// crc32_portable's result, by carry-less multiply folding: 64 bytes a step in four
/// lanes, then 16, then the last size % 16 bytes, then a Barrett reduction; a buffer under
/// 16 bytes goes to crc32_portable. Requires crc32_clmul_supported(). Reads only [data, data + size).
[[nodiscard]] __attribute__((target("pclmul,ssse3"))) inline std::uint32_t crc32_clmul(std::uint32_t crc,
                                                                                       const std::byte* data,
                                                                                       std::size_t size) noexcept {
    return crc32_clmul_detail::clmul<false>(crc, data, nullptr, size);
}

namespace crc32_clmul_detail {

// Four 64-bit lanes, as __m256i; built with vector extensions rather than <immintrin.h>.
using v4x64 = long long __attribute__((vector_size(32)));

// VPCLMULQDQ on both 128-bit halves; Imm selects the 64-bit lanes as in _mm256_clmulepi64_epi128.
template <int Imm>
[[nodiscard]] __attribute__((target("pclmul,avx2,vpclmulqdq"))) inline v4x64 clmul2(v4x64 a, v4x64 b) noexcept {
#if defined(__clang__)
    return __builtin_ia32_pclmulqdq256(a, b, Imm);
#else
    return __builtin_ia32_vpclmulqdq_v4di(a, b, Imm);
#endif
}

// fold() on both 128-bit halves at once.
[[nodiscard]] __attribute__((target("pclmul,avx2,vpclmulqdq"))) inline v4x64 fold2(v4x64 r, v4x64 k,
                                                                                   v4x64 next) noexcept {
    return clmul2<0x00>(r, k) ^ clmul2<0x11>(r, k) ^ next;
}

[[nodiscard]] __attribute__((target("pclmul,avx2,vpclmulqdq"))) inline v4x64 load2(const std::byte* p) noexcept {
    v4x64 v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

[[nodiscard]] __attribute__((target("pclmul,avx2,vpclmulqdq"))) inline v4x64 pair(std::uint64_t lo,
                                                                                  std::uint64_t hi) noexcept {
    return v4x64{static_cast<long long>(lo), static_cast<long long>(hi), static_cast<long long>(lo),
                 static_cast<long long>(hi)};
}

// take() of 32 bytes.
template <bool Copy>
[[nodiscard]] __attribute__((target("pclmul,avx2,vpclmulqdq"))) inline v4x64 take2(const std::byte* in, std::byte* out,
                                                                                   std::size_t at) noexcept {
    const v4x64 v = load2(in + at);
    if constexpr (Copy) __builtin_memcpy(out + at, &v, sizeof v);
    return v;
}

// crc32_vclmul, and with Copy the bytes stored at `out` too.
template <bool Copy>
[[nodiscard]] __attribute__((target("pclmul,avx2,vpclmulqdq"))) inline std::uint32_t vclmul(std::uint32_t crc,
                                                                                            const std::byte* in,
                                                                                            std::byte* out,
                                                                                            std::size_t size) noexcept {
    namespace k = crc32_constants;
    if (size < 256) return clmul<Copy>(crc, in, out, size);
    const v4x64 first = take2<Copy>(in, out, 0) ^ v4x64 { static_cast<long long>(~crc), 0, 0, 0 };
    const v4x64 k1024 = pair(k::fold1024_lo, k::fold1024_hi);
    v4x64 r[4] = {first, take2<Copy>(in, out, 32), take2<Copy>(in, out, 64), take2<Copy>(in, out, 96)};
    std::size_t at = 128;
    for (; size - at >= 128; at += 128) {
        // Unrolled, so that the four lanes stay in registers.
#pragma GCC unroll 4
        for (std::size_t i = 0; i < 4; ++i) r[i] = fold2(r[i], k1024, take2<Copy>(in, out, at + 32 * i));
    }
    const v4x64 k768 = pair(k::fold768_lo, k::fold768_hi);
    const v4x64 k512 = pair(k::fold512_lo, k::fold512_hi);
    const v4x64 k256 = pair(k::fold256_lo, k::fold256_hi);
    const v4x64 folded = fold2(r[0], k768, fold2(r[1], k512, fold2(r[2], k256, r[3])));
    // The lower half comes first in the message.
    const __m128i k128 = _mm_set_epi64x(static_cast<long long>(k::fold128_hi), static_cast<long long>(k::fold128_lo));
    return finish<Copy>(fold(_mm_set_epi64x(folded[1], folded[0]), k128, _mm_set_epi64x(folded[3], folded[2])), in, out,
                        at, size);
}

}  // namespace crc32_clmul_detail

/// crc32_clmul with 256-bit registers: 128 bytes a step in eight 128-bit lanes, folded
/// down to one and finished as crc32_clmul does; under 256 bytes it is crc32_clmul.
/// Requires crc32_vclmul_supported(). Reads only [data, data + size).
[[nodiscard]] __attribute__((target("pclmul,avx2,vpclmulqdq"))) inline std::uint32_t crc32_vclmul(
    std::uint32_t crc, const std::byte* data, std::size_t size) noexcept {
    return crc32_clmul_detail::vclmul<false>(crc, data, nullptr, size);
}

namespace crc32_clmul_detail {

// Eight 64-bit lanes, as __m512i; vector extensions again.
using v8x64 = long long __attribute__((vector_size(64)));

template <int Imm>
[[nodiscard]] __attribute__((target("pclmul,avx2,avx512f,vpclmulqdq"))) inline v8x64 clmul4(v8x64 a, v8x64 b) noexcept {
#if defined(__clang__)
    return __builtin_ia32_pclmulqdq512(a, b, Imm);
#else
    return __builtin_ia32_vpclmulqdq_v8di(a, b, Imm);
#endif
}

// fold() on the four 128-bit quarters at once.
[[nodiscard]] __attribute__((target("pclmul,avx2,avx512f,vpclmulqdq"))) inline v8x64 fold4(v8x64 r, v8x64 k,
                                                                                           v8x64 next) noexcept {
    return clmul4<0x00>(r, k) ^ clmul4<0x11>(r, k) ^ next;
}

[[nodiscard]] __attribute__((target("pclmul,avx2,avx512f,vpclmulqdq"))) inline v8x64 load4(
    const std::byte* p) noexcept {
    v8x64 v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
}

[[nodiscard]] __attribute__((target("pclmul,avx2,avx512f,vpclmulqdq"))) inline v8x64 quad(std::uint64_t lo,
                                                                                          std::uint64_t hi) noexcept {
    const auto l = static_cast<long long>(lo);
    const auto h = static_cast<long long>(hi);
    return v8x64{l, h, l, h, l, h, l, h};
}

// take() of 64 bytes.
template <bool Copy>
[[nodiscard]] __attribute__((target("pclmul,avx2,avx512f,vpclmulqdq"))) inline v8x64 take4(const std::byte* in,
                                                                                           std::byte* out,
                                                                                           std::size_t at) noexcept {
    const v8x64 v = load4(in + at);
    if constexpr (Copy) __builtin_memcpy(out + at, &v, sizeof v);
    return v;
}

// crc32_zclmul, and with Copy the bytes stored at `out` too.
template <bool Copy>
[[nodiscard]] __attribute__((target("pclmul,avx2,avx512f,vpclmulqdq"))) inline std::uint32_t zclmul(
    std::uint32_t crc, const std::byte* in, std::byte* out, std::size_t size) noexcept {
    namespace k = crc32_constants;
    if (size < 512) return vclmul<Copy>(crc, in, out, size);
    const v8x64 k2048 = quad(k::fold2048_lo, k::fold2048_hi);
    v8x64 r[4] = {take4<Copy>(in, out, 0) ^ v8x64{static_cast<long long>(~crc), 0, 0, 0, 0, 0, 0, 0},
                  take4<Copy>(in, out, 64), take4<Copy>(in, out, 128), take4<Copy>(in, out, 192)};
    std::size_t at = 256;
    for (; size - at >= 256; at += 256) {
        // Unrolled, so that the four lanes stay in registers.
#pragma GCC unroll 4
        for (std::size_t i = 0; i < 4; ++i) r[i] = fold4(r[i], k2048, take4<Copy>(in, out, at + 64 * i));
    }
    const v8x64 k1536 = quad(k::fold1536_lo, k::fold1536_hi);
    const v8x64 k1024 = quad(k::fold1024_lo, k::fold1024_hi);
    const v8x64 k512 = quad(k::fold512_lo, k::fold512_hi);
    const v8x64 folded = fold4(r[0], k1536, fold4(r[1], k1024, fold4(r[2], k512, r[3])));
    // The four quarters, first in the message first, folded into one.
    return finish<Copy>(fold_four(_mm_set_epi64x(folded[1], folded[0]), _mm_set_epi64x(folded[3], folded[2]),
                                  _mm_set_epi64x(folded[5], folded[4]), _mm_set_epi64x(folded[7], folded[6])),
                        in, out, at, size);
}

}  // namespace crc32_clmul_detail

/// crc32_clmul with 512-bit registers: 256 bytes a step in sixteen 128-bit lanes (twice
/// crc32_vclmul's speed where the CPU runs VPCLMULQDQ on 512 bits at full rate), folded down
/// to one and finished as crc32_clmul does; under 512 bytes it is crc32_vclmul.
/// Requires crc32_zclmul_supported(). Reads only [data, data + size).
[[nodiscard]] __attribute__((target("pclmul,avx2,avx512f,vpclmulqdq"))) inline std::uint32_t crc32_zclmul(
    std::uint32_t crc, const std::byte* data, std::size_t size) noexcept {
    return crc32_clmul_detail::zclmul<false>(crc, data, nullptr, size);
}

#endif

/// zlib's crc32() of `bytes` continued from `crc` (0 to start), bit for bit: by
/// crc32_zclmul, crc32_vclmul or crc32_clmul when the CPU has them (from 16 bytes on they
/// beat zlib), else by crc32_portable.
[[nodiscard]] inline std::uint32_t crc32_update(std::uint32_t crc, std::span<const std::byte> bytes) noexcept {
#if TIERGUARD_CRC32_CLMUL
    if (bytes.size() >= 16) {
        const int level = crc32_clmul_detail::cpu_level();
        if (level >= 3) return crc32_zclmul(crc, bytes.data(), bytes.size());
        if (level >= 2) return crc32_vclmul(crc, bytes.data(), bytes.size());
        if (level >= 1) return crc32_clmul(crc, bytes.data(), bytes.size());
    }
#endif
    return crc32_portable(crc, bytes.data(), bytes.size());
}

/// crc32_update(crc, in), copying `in` to `out` (in.size() bytes; the two must not
/// overlap) on the way: each byte is loaded once, for the copy and the CRC both.
[[nodiscard]] inline std::uint32_t crc32_copy(std::uint32_t crc, std::byte* out,
                                              std::span<const std::byte> in) noexcept {
#if TIERGUARD_CRC32_CLMUL
    if (in.size() >= 16) {
        const int level = crc32_clmul_detail::cpu_level();
        if (level >= 3) return crc32_clmul_detail::zclmul<true>(crc, in.data(), out, in.size());
        if (level >= 2) return crc32_clmul_detail::vclmul<true>(crc, in.data(), out, in.size());
        if (level >= 1) return crc32_clmul_detail::clmul<true>(crc, in.data(), out, in.size());
    }
#endif
    if (!in.empty()) std::memcpy(out, in.data(), in.size());
    return crc32_portable(crc, in.data(), in.size());
}

}  // namespace tierguard::detail
