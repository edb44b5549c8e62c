# cmake -DNM=<nm> -DOBJECT=<instantiate.cpp's object> -P instantiate_extern.cmake
# Fails if the object of a TU that declares `extern template class tierguard::cache<...>`
# defines a member of the cache, the disk tier or the memory tier (other than the nested
# config the TU builds): the explicit instantiation in another TU should provide them all.
execute_process(COMMAND "${NM}" -C --defined-only "${OBJECT}" OUTPUT_VARIABLE symbols RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} failed on ${OBJECT}")
endif()
string(REPLACE "\n" ";" lines "${symbols}")
set(found "")
foreach(line IN LISTS lines)
  if(line MATCHES "^[0-9a-f]+ [TtWw] tierguard::(cache|disk_tier|memory_tier)<" AND NOT line MATCHES ">::config::")
    string(APPEND found "  ${line}\n")
  endif()
endforeach()
if(found)
  message(FATAL_ERROR "${OBJECT} defines members that tierguard/instantiate.hpp's extern template should keep out:\n${found}")
endif()
message(STATUS "${OBJECT}: no member of cache, disk_tier or memory_tier defined")
