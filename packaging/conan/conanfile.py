"""Conan 2 recipe for tierguard, a header-only C++20 library that needs zlib.

Create the package from the repository root (the version is the one below, a copy of
include/tierguard/version.hpp's that a test keeps equal; LICENSE goes into licenses/):
    conan create packaging/conan
The test_package builds a small program with find_package(tierguard) and runs it.
Option with_redis (default False) adds hiredis and the tierguard::redis target
(tierguard/storage/redis.hpp): conan create packaging/conan -o "tierguard/*:with_redis=True"
"""
import os

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.cmake import CMake, CMakeToolchain, cmake_layout
from conan.tools.files import copy


class TierguardConan(ConanFile):
    name = "tierguard"
    version = "0.1.0"
    license = "MIT"
    description = "A header-only C++20 tiered cache that keeps serving when a tier breaks"
    topics = ("cache", "header-only", "circuit-breaker", "fault-tolerance")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    options = {"with_redis": [True, False]}
    default_options = {"with_redis": False}
    no_copy_source = True

    def export_sources(self):
        root = os.path.join(self.recipe_folder, "..", "..")
        for pattern in ("CMakeLists.txt", "cmake/*", "include/*", "LICENSE*"):
            copy(self, pattern, src=root, dst=self.export_sources_folder)

    def layout(self):
        cmake_layout(self)

    def requirements(self):
        # Public: tierguard's headers include zlib.h, so consumers need its headers too.
        self.requires("zlib/[>=1.2.11 <2]", transitive_headers=True)
        if self.options.with_redis:
            # storage/redis.hpp includes hiredis.h and its users link hiredis.
            self.requires("hiredis/[>=0.14 <2]", transitive_headers=True, transitive_libs=True)

    def package_id(self):
        # Header-only: one package per with_redis, whatever the settings.
        self.info.settings.clear()
        self.info.requires.clear()

    def validate(self):
        check_min_cppstd(self, 20)

    def generate(self):
        tc = CMakeToolchain(self)
        tc.cache_variables["TIERGUARD_BUILD_TESTS"] = False
        tc.cache_variables["TIERGUARD_BUILD_BENCH"] = False
        tc.cache_variables["TIERGUARD_BUILD_EXAMPLES"] = False
        tc.cache_variables["TIERGUARD_BUILD_TOOLS"] = False  # header-only package: no bin/tierguard-cli
        tc.cache_variables["TIERGUARD_WITH_REDIS"] = bool(self.options.with_redis)
        tc.generate()

    def build(self):
        pass

    def package(self):
        # tierguard's own install rules: headers, CMake package config, pkg-config file,
        # share/doc/tierguard/LICENSE; and the license where Conan looks for it.
        copy(self, "LICENSE", src=self.source_folder, dst=os.path.join(self.package_folder, "licenses"))
        cmake = CMake(self)
        cmake.configure()
        cmake.install()

    def package_info(self):
        self.cpp_info.set_property("cmake_file_name", "tierguard")
        core = self.cpp_info.components["tierguard"]
        core.bindirs = []
        core.libdirs = []
        core.requires = ["zlib::zlib"]
        core.set_property("cmake_target_name", "tierguard::tierguard")
        core.set_property("pkg_config_name", "tierguard")
        if self.options.with_redis:
            redis = self.cpp_info.components["redis"]
            redis.bindirs = []
            redis.libdirs = []
            redis.requires = ["tierguard", "hiredis::hiredis"]
            if self.settings.os in ("Linux", "FreeBSD"):
                redis.system_libs = ["pthread"]  # subscribe() runs a std::thread
            redis.set_property("cmake_target_name", "tierguard::redis")
            redis.set_property("pkg_config_name", "tierguard-redis")
