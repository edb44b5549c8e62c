// umbrella.cpp in a program that compiles the cache once (see tierguard/instantiate.hpp):
// this TU only declares the instantiation; another TU defines it.
#include <tierguard/tierguard.hpp>

#include <string>

extern template class tierguard::cache<std::string, std::string>;

#include "umbrella.cpp"
