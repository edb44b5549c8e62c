// Catch2 2.x needs one TU that defines main; Catch2 3.x links its own.
#ifndef TIERGUARD_CATCH_PROVIDES_MAIN
#define CATCH_CONFIG_MAIN
#endif
#include "test_framework.hpp"
