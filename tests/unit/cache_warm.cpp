#include "support/test_framework.hpp"
