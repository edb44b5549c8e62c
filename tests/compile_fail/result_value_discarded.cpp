// expect: (ignoring return value|unused-result|nodiscard)
// result<T> is [[nodiscard]]: dropping a put's result (and with it a failure) is an error
// under the project's -Werror.
#include <tierguard/result.hpp>

tierguard::result<int> produce() { return 1; }

int main() {
    produce();
    return 0;
}
