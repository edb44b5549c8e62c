# vcpkg overlay port for tierguard (header-only). Use it from a checkout of this
# repository: vcpkg install tierguard --overlay-ports=<repo>/packaging/vcpkg/ports
# The sources are the checkout this port sits in; a registry port would fetch a release
# with vcpkg_from_github instead.
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../../../.." ABSOLUTE)

set(VCPKG_BUILD_TYPE release)  # header-only: one configuration is all there is

# Feature redis: hiredis and the tierguard::redis target.
vcpkg_check_features(OUT_FEATURE_OPTIONS feature_options FEATURES redis TIERGUARD_WITH_REDIS)

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    ${feature_options}
    -DTIERGUARD_BUILD_TESTS=OFF
    -DTIERGUARD_BUILD_BENCH=OFF
    -DTIERGUARD_BUILD_EXAMPLES=OFF
    -DTIERGUARD_BUILD_TOOLS=OFF  # header-only package: tierguard-cli would land in bin/
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/tierguard)
vcpkg_fixup_pkgconfig()

# Nothing architecture-specific is installed.
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug" "${CURRENT_PACKAGES_DIR}/lib")

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
