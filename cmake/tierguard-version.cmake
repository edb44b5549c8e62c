# tierguard's version is written in one place, include/tierguard/version.hpp; project()
# takes it from there (docs/RELEASING.md). Sets TIERGUARD_VERSION to "major.minor.patch".
get_filename_component(tierguard_version_header "${CMAKE_CURRENT_LIST_DIR}/../include/tierguard/version.hpp" ABSOLUTE)
set(TIERGUARD_VERSION "")
foreach(part IN ITEMS major minor patch)
  file(STRINGS "${tierguard_version_header}" tierguard_version_line REGEX "^inline constexpr int version_${part} = [0-9]+;")
  # file(STRINGS) escapes the line's semicolon as "\;".
  if(NOT tierguard_version_line MATCHES "^inline constexpr int version_${part} = ([0-9]+)\\\\;$")
    message(FATAL_ERROR "${tierguard_version_header}: expected one line "
                        "'inline constexpr int version_${part} = <number>;', found '${tierguard_version_line}'")
  endif()
  list(APPEND TIERGUARD_VERSION "${CMAKE_MATCH_1}")
endforeach()
list(JOIN TIERGUARD_VERSION "." TIERGUARD_VERSION)
unset(tierguard_version_header)
unset(tierguard_version_line)
