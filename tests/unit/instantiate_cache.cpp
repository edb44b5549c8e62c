#include "instantiate_cache.hpp"

#include <tierguard/instantiate.hpp>

template class tierguard::cache<std::string, std::string>;
