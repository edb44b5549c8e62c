#pragma once

#include <tierguard/errc.hpp>

#include <concepts>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace tierguard {

/// Holds an error value to construct an expected in the error state, as std::unexpected.
template <class E>
class unexpected {
public:
    template <class G = E>
        requires(!std::is_same_v<std::remove_cvref_t<G>, unexpected> &&
                 !std::is_same_v<std::remove_cvref_t<G>, std::in_place_t> && std::is_constructible_v<E, G>)
    constexpr explicit unexpected(G&& e) : m_error(std::forward<G>(e)) {}

    template <class... Args>
    constexpr explicit unexpected(std::in_place_t, Args&&... args) : m_error(std::forward<Args>(args)...) {}

    constexpr const E& error() const& noexcept { return m_error; }
    constexpr E& error() & noexcept { return m_error; }
    constexpr E&& error() && noexcept { return std::move(m_error); }
    constexpr const E&& error() const&& noexcept { return std::move(m_error); }

    template <class G>
    friend constexpr bool operator==(const unexpected& a, const unexpected<G>& b) {
        return a.error() == b.error();
    }

private:
    E m_error;
};

template <class E>
unexpected(E) -> unexpected<E>;

/// Tag selecting the error-state constructors, as std::unexpect_t.
struct unexpect_t {
    explicit unexpect_t() = default;
};
inline constexpr unexpect_t unexpect{};

/// Thrown by expected::value() when there is no value; carries the error.
///
/// For tierguard::failure, what() is the failure's one-line message.
template <class E>
class bad_expected_access : public std::exception {
public:
    explicit bad_expected_access(E e) : m_error(std::move(e)) {
        if constexpr (requires { m_error.message(); }) {
            m_what = m_error.message();
        } else {
            m_what = "tierguard: value() called on an expected holding an error";
        }
    }
    [[nodiscard]] const char* what() const noexcept override { return m_what.c_str(); }
    [[nodiscard]] const E& error() const& noexcept { return m_error; }
    [[nodiscard]] E& error() & noexcept { return m_error; }
    [[nodiscard]] E&& error() && noexcept { return std::move(m_error); }

private:
    E m_error;
    std::string m_what;
};

template <class T, class E>
class expected;

namespace detail {
// Replaces the member `old` with a New built from args; if building throws, `old` is back
// in place (std::expected's reinit-expected).
template <class New, class Old, class... Args>
constexpr void reinit(New& fresh, Old& old, Args&&... args) {
    if constexpr (std::is_nothrow_constructible_v<New, Args...>) {
        std::destroy_at(&old);
        std::construct_at(&fresh, std::forward<Args>(args)...);
    } else if constexpr (std::is_nothrow_move_constructible_v<New>) {
        New built(std::forward<Args>(args)...);
        std::destroy_at(&old);
        std::construct_at(&fresh, std::move(built));
    } else {
        Old kept(std::move(old));
        std::destroy_at(&old);
        try {
            std::construct_at(&fresh, std::forward<Args>(args)...);
        } catch (...) {
            std::construct_at(&old, std::move(kept));
            throw;
        }
    }
}

// Assign to the live member of an expected_storage, or replace it.
template <class S, class U>
constexpr void assign_value(S& s, U&& v) {
    if (s.has_value) {
        s.value = std::forward<U>(v);
    } else {
        reinit(s.value, s.error, std::forward<U>(v));
        s.has_value = true;
    }
}
template <class S, class G>
constexpr void assign_error(S& s, G&& e) {
    if (!s.has_value) {
        s.error = std::forward<G>(e);
    } else {
        reinit(s.error, s.value, std::forward<G>(e));
        s.has_value = false;
    }
}

// Direct-initialization of a T from args, an arithmetic conversion spelt out: what
// std::variant and std::expected do, silently as system headers, for expected<size_t, E>
// built from an int (-Wsign-conversion would otherwise flag this header). A pointer or
// enum is not cast (T(x) would be a C-style cast).
template <class T, class... Args>
constexpr T make(Args&&... args) {
    if constexpr (!std::is_scalar_v<T> || std::is_arithmetic_v<T> || sizeof...(Args) != 1) {
        return T(std::forward<Args>(args)...);
    } else {
        T out(std::forward<Args>(args)...);
        return out;
    }
}

template <class T, class E>
inline constexpr bool trivial_expected =
    std::is_trivially_copy_constructible_v<T>&& std::is_trivially_move_constructible_v<T>&&
        std::is_trivially_copy_assignable_v<T>&& std::is_trivially_move_assignable_v<T>&&
            std::is_trivially_destructible_v<T>&& std::is_trivially_copy_constructible_v<E>&&
                std::is_trivially_move_constructible_v<E>&& std::is_trivially_copy_assignable_v<E>&&
                    std::is_trivially_move_assignable_v<E>&& std::is_trivially_destructible_v<E>;

// expected<T, E>'s state: a union of T and E and which one is alive. Copies, moves and
// destroys the live member; trivially so when T and E are trivial (the specialization
// below: one class per case, as clang 14 does not pick among constrained destructors).
template <class T, class E, bool Trivial = trivial_expected<T, E>>
struct expected_storage {
    template <class... Args>
    constexpr explicit expected_storage(std::in_place_t, Args&&... args)
        : value(make<T>(std::forward<Args>(args)...)), has_value(true) {}
    template <class... Args>
    constexpr explicit expected_storage(unexpect_t, Args&&... args)
        : error(make<E>(std::forward<Args>(args)...)), has_value(false) {}

    constexpr expected_storage(const expected_storage& other) requires(
        std::is_copy_constructible_v<T>&& std::is_copy_constructible_v<E>)
        : has_value(other.has_value) {
        if (has_value) {
            std::construct_at(&value, other.value);
        } else {
            std::construct_at(&error, other.error);
        }
    }
    constexpr expected_storage(expected_storage&& other) noexcept(
        std::is_nothrow_move_constructible_v<T>&& std::is_nothrow_move_constructible_v<
            E>) requires(std::is_move_constructible_v<T>&& std::is_move_constructible_v<E>)
        : has_value(other.has_value) {
        if (has_value) {
            std::construct_at(&value, std::move(other.value));
        } else {
            std::construct_at(&error, std::move(other.error));
        }
    }
    constexpr expected_storage& operator=(const expected_storage& other) requires(
        std::is_copy_constructible_v<T>&& std::is_copy_assignable_v<T>&& std::is_copy_constructible_v<E>&&
            std::is_copy_assignable_v<E>) {
        if (other.has_value) {
            detail::assign_value(*this, other.value);
        } else {
            detail::assign_error(*this, other.error);
        }
        return *this;
    }
    constexpr expected_storage& operator=(expected_storage&& other) noexcept(
        std::is_nothrow_move_constructible_v<T>&& std::is_nothrow_move_assignable_v<T>&&
            std::is_nothrow_move_constructible_v<E>&& std::is_nothrow_move_assignable_v<
                E>) requires(std::is_move_constructible_v<T>&& std::is_move_assignable_v<T>&&
                                 std::is_move_constructible_v<E>&& std::is_move_assignable_v<E>) {
        if (other.has_value) {
            detail::assign_value(*this, std::move(other.value));
        } else {
            detail::assign_error(*this, std::move(other.error));
        }
        return *this;
    }
    constexpr ~expected_storage() {
        if (has_value) {
            std::destroy_at(&value);
        } else {
            std::destroy_at(&error);
        }
    }

    union {
        T value;
        E error;
    };
    bool has_value;
};

// Trivial T and E: the union's implicit members copy, move and destroy.
template <class T, class E>
struct expected_storage<T, E, true> {
    template <class... Args>
    constexpr explicit expected_storage(std::in_place_t, Args&&... args)
        : value(make<T>(std::forward<Args>(args)...)), has_value(true) {}
    template <class... Args>
    constexpr explicit expected_storage(unexpect_t, Args&&... args)
        : error(make<E>(std::forward<Args>(args)...)), has_value(false) {}

    union {
        T value;
        E error;
    };
    bool has_value;
};

template <class T>
inline constexpr bool is_expected = false;
template <class T, class E>
inline constexpr bool is_expected<expected<T, E>> = true;

// The monadic operations, written once for every value category of `self` and for
// both expected<T, E> and expected<void, E>.
struct monadic {
    template <class Self, class F>
    static constexpr auto and_then(Self&& self, F&& f) {
        using S = std::remove_cvref_t<Self>;
        if constexpr (std::is_void_v<typename S::value_type>) {
            using U = std::remove_cvref_t<std::invoke_result_t<F>>;
            static_assert(is_expected<U>, "and_then: the function must return an expected");
            if (self.has_value()) return std::invoke(std::forward<F>(f));
            return U(unexpect, std::forward<Self>(self).error());
        } else {
            using U = std::remove_cvref_t<std::invoke_result_t<F, decltype(*std::forward<Self>(self))>>;
            static_assert(is_expected<U>, "and_then: the function must return an expected");
            if (self.has_value()) return std::invoke(std::forward<F>(f), *std::forward<Self>(self));
            return U(unexpect, std::forward<Self>(self).error());
        }
    }

    template <class Self, class F>
    static constexpr auto or_else(Self&& self, F&& f) {
        using S = std::remove_cvref_t<Self>;
        using G = std::remove_cvref_t<std::invoke_result_t<F, decltype(std::forward<Self>(self).error())>>;
        static_assert(is_expected<G>, "or_else: the function must return an expected");
        static_assert(std::is_same_v<typename G::value_type, typename S::value_type>,
                      "or_else: the function must return an expected of the same value type");
        if (!self.has_value()) return std::invoke(std::forward<F>(f), std::forward<Self>(self).error());
        if constexpr (std::is_void_v<typename S::value_type>) {
            return G();
        } else {
            return G(std::in_place, *std::forward<Self>(self));
        }
    }

    template <class Self, class F>
    static constexpr auto transform(Self&& self, F&& f) {
        using S = std::remove_cvref_t<Self>;
        using E = typename S::error_type;
        constexpr bool void_in = std::is_void_v<typename S::value_type>;
        using U = std::remove_cv_t<decltype(call_value<void_in>(std::forward<F>(f), std::forward<Self>(self)))>;
        if (!self.has_value()) return expected<U, E>(unexpect, std::forward<Self>(self).error());
        if constexpr (std::is_void_v<U>) {
            call_value<void_in>(std::forward<F>(f), std::forward<Self>(self));
            return expected<U, E>();
        } else {
            return expected<U, E>(std::in_place, call_value<void_in>(std::forward<F>(f), std::forward<Self>(self)));
        }
    }

    template <class Self, class F>
    static constexpr auto transform_error(Self&& self, F&& f) {
        using S = std::remove_cvref_t<Self>;
        using T = typename S::value_type;
        using G = std::remove_cv_t<std::invoke_result_t<F, decltype(std::forward<Self>(self).error())>>;
        if (!self.has_value())
            return expected<T, G>(unexpect, std::invoke(std::forward<F>(f), std::forward<Self>(self).error()));
        if constexpr (std::is_void_v<T>) {
            return expected<T, G>();
        } else {
            return expected<T, G>(std::in_place, *std::forward<Self>(self));
        }
    }

private:
    template <bool VoidIn, class F, class Self>
    static constexpr decltype(auto) call_value(F&& f, Self&& self) {
        if constexpr (VoidIn) {
            return std::invoke(std::forward<F>(f));
        } else {
            return std::invoke(std::forward<F>(f), *std::forward<Self>(self));
        }
    }
};
}  // namespace detail

/// A value of type T or an error of type E, mirroring C++23 std::expected so that a
/// later switch is a typedef. Works with move-only and non-default-constructible T.
///
/// Never empty: an assignment that switches between value and error builds the new
/// member before it destroys the old one, or restores the old one if that throws (as
/// std::expected does). A tagged union rather than std::variant, whose machinery costs
/// every translation unit hundreds of instantiations (docs/COMPILE_TIME.md).
template <class T, class E>
class [[nodiscard]] expected {
    static_assert(!std::is_reference_v<T>, "expected<T&, E> is not supported");
    static_assert(!std::is_same_v<std::remove_cv_t<T>, std::in_place_t>, "expected<in_place_t, E> is not supported");

public:
    using value_type = T;
    using error_type = E;
    using unexpected_type = unexpected<E>;
    template <class U>
    using rebind = expected<U, error_type>;

    constexpr expected() requires std::is_default_constructible_v<T> : m_s(std::in_place) {}

    template <class U = T>
        requires(!std::is_same_v<std::remove_cvref_t<U>, std::in_place_t> &&
                 !std::is_same_v<std::remove_cvref_t<U>, expected> &&
                 !std::is_same_v<std::remove_cvref_t<U>, unexpect_t> && !detail::is_expected<std::remove_cvref_t<U>> &&
                 std::is_constructible_v<T, U>)
    constexpr explicit(!std::is_convertible_v<U, T>) expected(U&& v) : m_s(std::in_place, std::forward<U>(v)) {}

    template <class G>
        requires std::is_constructible_v<E, const G&>
    constexpr explicit(!std::is_convertible_v<const G&, E>) expected(const unexpected<G>& e)
        : m_s(unexpect, e.error()) {}

    template <class G>
        requires std::is_constructible_v<E, G>
    constexpr explicit(!std::is_convertible_v<G, E>) expected(unexpected<G>&& e)
        : m_s(unexpect, std::move(e).error()) {}

    template <class... Args>
    constexpr explicit expected(std::in_place_t, Args&&... args) : m_s(std::in_place, std::forward<Args>(args)...) {}

    template <class U, class... Args>
    constexpr explicit expected(std::in_place_t, std::initializer_list<U> il, Args&&... args)
        : m_s(std::in_place, il, std::forward<Args>(args)...) {}

    template <class... Args>
    constexpr explicit expected(unexpect_t, Args&&... args) : m_s(unexpect, std::forward<Args>(args)...) {}

    template <class U = T>
        requires(!std::is_same_v<std::remove_cvref_t<U>, expected> && !detail::is_expected<std::remove_cvref_t<U>> &&
                 std::is_constructible_v<T, U> && std::is_assignable_v<T&, U>)
    constexpr expected& operator=(U&& v) {
        detail::assign_value(m_s, std::forward<U>(v));
        return *this;
    }

    template <class G>
    constexpr expected& operator=(const unexpected<G>& e) {
        detail::assign_error(m_s, e.error());
        return *this;
    }

    template <class G>
    constexpr expected& operator=(unexpected<G>&& e) {
        detail::assign_error(m_s, std::move(e).error());
        return *this;
    }

    template <class... Args>
    constexpr T& emplace(Args&&... args) {
        if (m_s.has_value) {
            detail::reinit(m_s.value, m_s.value, std::forward<Args>(args)...);
        } else {
            detail::reinit(m_s.value, m_s.error, std::forward<Args>(args)...);
            m_s.has_value = true;
        }
        return m_s.value;
    }

    constexpr void swap(expected& other) noexcept(
        std::is_nothrow_move_constructible_v<T>&& std::is_nothrow_swappable_v<T>&&
            std::is_nothrow_move_constructible_v<E>&& std::is_nothrow_swappable_v<E>) {
        using std::swap;
        if (m_s.has_value && other.m_s.has_value) {
            swap(m_s.value, other.m_s.value);
        } else if (!m_s.has_value && !other.m_s.has_value) {
            swap(m_s.error, other.m_s.error);
        } else if (m_s.has_value) {
            T value(std::move(m_s.value));
            detail::assign_error(m_s, std::move(other.m_s.error));
            detail::assign_value(other.m_s, std::move(value));
        } else {
            other.swap(*this);
        }
    }
    friend constexpr void swap(expected& a, expected& b) noexcept(noexcept(a.swap(b))) { a.swap(b); }

    [[nodiscard]] constexpr bool has_value() const noexcept { return m_s.has_value; }
    constexpr explicit operator bool() const noexcept { return m_s.has_value; }

    /// Precondition: has_value(). Use value() for a checked access.
    constexpr const T* operator->() const noexcept { return &m_s.value; }
    constexpr T* operator->() noexcept { return &m_s.value; }
    constexpr const T& operator*() const& noexcept { return m_s.value; }
    constexpr T& operator*() & noexcept { return m_s.value; }
    constexpr T&& operator*() && noexcept { return std::move(m_s.value); }
    constexpr const T&& operator*() const&& noexcept { return std::move(m_s.value); }

    /// Throws bad_expected_access<E> holding a copy of the error when there is no value.
    constexpr T& value() & { return checked(*this); }
    constexpr const T& value() const& { return checked(*this); }
    constexpr T&& value() && { return std::move(checked(*this)); }
    constexpr const T&& value() const&& { return std::move(checked(*this)); }

    /// Precondition: !has_value().
    constexpr const E& error() const& noexcept { return m_s.error; }
    constexpr E& error() & noexcept { return m_s.error; }
    constexpr E&& error() && noexcept { return std::move(m_s.error); }
    constexpr const E&& error() const&& noexcept { return std::move(m_s.error); }

    template <class U>
    constexpr T value_or(U&& fallback) const& {
        return has_value() ? **this : static_cast<T>(std::forward<U>(fallback));
    }
    template <class U>
    constexpr T value_or(U&& fallback) && {
        return has_value() ? std::move(**this) : static_cast<T>(std::forward<U>(fallback));
    }

    template <class G = E>
    constexpr E error_or(G&& fallback) const& {
        return has_value() ? static_cast<E>(std::forward<G>(fallback)) : error();
    }

    template <class F>
    constexpr auto and_then(F&& f) & {
        return detail::monadic::and_then(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto and_then(F&& f) const& {
        return detail::monadic::and_then(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto and_then(F&& f) && {
        return detail::monadic::and_then(std::move(*this), std::forward<F>(f));
    }
    template <class F>
    constexpr auto and_then(F&& f) const&& {
        return detail::monadic::and_then(std::move(*this), std::forward<F>(f));
    }
    template <class F>
    constexpr auto or_else(F&& f) & {
        return detail::monadic::or_else(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto or_else(F&& f) const& {
        return detail::monadic::or_else(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto or_else(F&& f) && {
        return detail::monadic::or_else(std::move(*this), std::forward<F>(f));
    }
    template <class F>
    constexpr auto or_else(F&& f) const&& {
        return detail::monadic::or_else(std::move(*this), std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform(F&& f) & {
        return detail::monadic::transform(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform(F&& f) const& {
        return detail::monadic::transform(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform(F&& f) && {
        return detail::monadic::transform(std::move(*this), std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform(F&& f) const&& {
        return detail::monadic::transform(std::move(*this), std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform_error(F&& f) & {
        return detail::monadic::transform_error(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform_error(F&& f) const& {
        return detail::monadic::transform_error(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform_error(F&& f) && {
        return detail::monadic::transform_error(std::move(*this), std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform_error(F&& f) const&& {
        return detail::monadic::transform_error(std::move(*this), std::forward<F>(f));
    }

    template <class T2, class E2>
        requires(!std::is_void_v<T2>)
    friend constexpr bool operator==(const expected& a, const expected<T2, E2>& b) {
        if (a.has_value() != b.has_value()) return false;
        return a.has_value() ? *a == *b : a.error() == b.error();
    }
    // Self is deduced so that a T2 convertible to expected is not converted (which would
    // recurse through the rewritten, reversed candidates C++20 adds).
    template <std::same_as<expected> Self, class T2>
        requires(!detail::is_expected<T2> && requires(const T& x, const T2& y) {
            { x == y } -> std::convertible_to<bool>;
        })
    friend constexpr bool operator==(const Self& a, const T2& v) { return a.has_value() && *a == v; }
    template <class E2>
    friend constexpr bool operator==(const expected& a, const unexpected<E2>& e) {
        return !a.has_value() && a.error() == e.error();
    }

private:
    template <class Self>
    static constexpr auto& checked(Self& self) {
        if (!self.has_value()) throw bad_expected_access<E>(self.error());
        return *self;
    }

    detail::expected_storage<T, E> m_s;
};

/// expected<void, E>: success carries nothing, failure carries E.
template <class E>
class [[nodiscard]] expected<void, E> {
public:
    using value_type = void;
    using error_type = E;
    using unexpected_type = unexpected<E>;
    template <class U>
    using rebind = expected<U, error_type>;

    constexpr expected() noexcept = default;
    constexpr explicit expected(std::in_place_t) noexcept {}

    template <class G>
        requires std::is_constructible_v<E, const G&>
    constexpr explicit(!std::is_convertible_v<const G&, E>) expected(const unexpected<G>& e) : m_error(e.error()) {}

    template <class G>
        requires std::is_constructible_v<E, G>
    constexpr explicit(!std::is_convertible_v<G, E>) expected(unexpected<G>&& e) : m_error(std::move(e).error()) {}

    template <class... Args>
    constexpr explicit expected(unexpect_t, Args&&... args) : m_error(std::in_place, std::forward<Args>(args)...) {}

    template <class G>
    constexpr expected& operator=(const unexpected<G>& e) {
        m_error.emplace(e.error());
        return *this;
    }
    template <class G>
    constexpr expected& operator=(unexpected<G>&& e) {
        m_error.emplace(std::move(e).error());
        return *this;
    }
    constexpr void emplace() noexcept { m_error.reset(); }

    constexpr void swap(expected& other) noexcept(std::is_nothrow_swappable_v<std::optional<E>>) {
        m_error.swap(other.m_error);
    }
    friend constexpr void swap(expected& a, expected& b) noexcept(noexcept(a.swap(b))) { a.swap(b); }

    [[nodiscard]] constexpr bool has_value() const noexcept { return !m_error.has_value(); }
    constexpr explicit operator bool() const noexcept { return has_value(); }
    constexpr void operator*() const noexcept {}

    /// Throws bad_expected_access<E> holding a copy of the error when there is one.
    constexpr void value() const& {
        if (!has_value()) throw bad_expected_access<E>(*m_error);
    }
    constexpr void value() && {
        if (!has_value()) throw bad_expected_access<E>(std::move(*m_error));
    }

    /// Precondition: !has_value().
    constexpr const E& error() const& noexcept { return *m_error; }
    constexpr E& error() & noexcept { return *m_error; }
    constexpr E&& error() && noexcept { return std::move(*m_error); }
    constexpr const E&& error() const&& noexcept { return std::move(*m_error); }

    template <class G = E>
    constexpr E error_or(G&& fallback) const& {
        return has_value() ? static_cast<E>(std::forward<G>(fallback)) : error();
    }

    template <class F>
    constexpr auto and_then(F&& f) & {
        return detail::monadic::and_then(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto and_then(F&& f) const& {
        return detail::monadic::and_then(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto and_then(F&& f) && {
        return detail::monadic::and_then(std::move(*this), std::forward<F>(f));
    }
    template <class F>
    constexpr auto or_else(F&& f) & {
        return detail::monadic::or_else(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto or_else(F&& f) const& {
        return detail::monadic::or_else(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto or_else(F&& f) && {
        return detail::monadic::or_else(std::move(*this), std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform(F&& f) & {
        return detail::monadic::transform(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform(F&& f) const& {
        return detail::monadic::transform(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform(F&& f) && {
        return detail::monadic::transform(std::move(*this), std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform_error(F&& f) & {
        return detail::monadic::transform_error(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform_error(F&& f) const& {
        return detail::monadic::transform_error(*this, std::forward<F>(f));
    }
    template <class F>
    constexpr auto transform_error(F&& f) && {
        return detail::monadic::transform_error(std::move(*this), std::forward<F>(f));
    }

    template <class E2>
    friend constexpr bool operator==(const expected& a, const expected<void, E2>& b) {
        if (a.has_value() != b.has_value()) return false;
        return a.has_value() || a.error() == b.error();
    }
    template <class E2>
    friend constexpr bool operator==(const expected& a, const unexpected<E2>& e) {
        return !a.has_value() && a.error() == e.error();
    }

private:
    std::optional<E> m_error;
};

/// The return type of every tierguard operation: a T, or a tierguard::failure.
template <class T>
using result = expected<T, failure>;

/// Builds the error state of any result: `return fail(errc::miss, tier::memory);`.
[[nodiscard]] inline unexpected<failure> fail(errc code, tier where, std::string context = {},
                                              std::error_code os_error = {}) {
    return unexpected<failure>(std::in_place, code, where, std::move(context), os_error);
}

}  // namespace tierguard
