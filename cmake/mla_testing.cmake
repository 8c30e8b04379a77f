# Helpers for the mla test suite: Boost.Test executables, compile-fail tests, header self-containment.

find_package(Boost 1.71 REQUIRED COMPONENTS unit_test_framework)

# Unity builds of the unit-test executables. The test files of an area instantiate the same heavy Eigen and
# library templates (decoder, conversion pipeline), so compiled one by one, and twice in CI (release and
# ASan+UBSan), most of the build was the same instantiations again: every translation unit of the conversion
# tests emits the whole conversion (nm: 8-15 MB of text each under ASan, the same functions in every one).
# Each executable is compiled as MLA_TEST_UNITY_BATCHES translation units (its files split evenly), two by
# default, so that two cores still share an executable. Measured (GCC 12, CPU seconds of the conversion tests'
# compile; bench/RESULTS.md, "Test-suite duration"): file by file -> batches of 4 files, ASan 1241 s -> 485 s.
# As the conversion grew, its 17 files in batches of 4 took 1208 s under ASan; the first 9 as one unit take
# 440 s (6.9 GB peak) where their batches took about 560 s.
# Test files must be unity-safe: no two files of one executable may define the same name at namespace
# scope, anonymous namespaces included (shared helpers live in tests/support/ or the area's *_test_support.hpp).
# -DMLA_TEST_UNITY_BUILD=OFF compiles file by file, e.g. to check that each file includes what it uses.
option(MLA_TEST_UNITY_BUILD "Compile each unit-test executable as MLA_TEST_UNITY_BATCHES translation units" ON)
set(MLA_TEST_UNITY_BATCHES 2 CACHE STRING "Unity translation units per unit-test executable")

# mla_add_test_executable(<name> SOURCES <files...> [LIBRARIES <targets...>] [LABELS <labels...>]
#                         [RESOURCE_CASES <boost-test-paths...>] [SLOW_CASES <boost-test-paths...>])
# One Boost.Test executable per area; each area has a main_test.cpp defining BOOST_TEST_MODULE.
# RESOURCE_CASES are the suites or cases that need a file the suite does not ship (tests/support/resources.hpp):
# each is its own CTest test, <name>/<path>, reported as skipped when its precondition prints the skip marker
# (a skip regular expression on the whole executable would also hide its failures), and the executable's own
# test leaves them out. SLOW_CASES are resource cases that run for minutes: labelled `slow` too, which the
# sanitizer preset excludes.
# CXX executables are unity builds (above); main_test.cpp stays its own translation unit, since
# BOOST_TEST_MODULE must come before the first #include of unit_test.hpp. CUDA executables (.cu sources,
# compiled by nvcc) are built file by file as before.
function(mla_add_test_executable name)
  cmake_parse_arguments(arg "" "" "SOURCES;LIBRARIES;LABELS;RESOURCE_CASES;SLOW_CASES" ${ARGN})
  add_executable(${name} ${arg_SOURCES})
  if(MLA_TEST_UNITY_BUILD AND NOT arg_SOURCES MATCHES "\\.cu(;|$)")
    list(LENGTH arg_SOURCES n_sources)  # main_test.cpp is its own unit (below)
    math(EXPR batch_size "(${n_sources} - 1 + ${MLA_TEST_UNITY_BATCHES} - 1) / ${MLA_TEST_UNITY_BATCHES}")
    if(batch_size LESS 1)
      set(batch_size 1)
    endif()
    set_target_properties(${name} PROPERTIES UNITY_BUILD ON UNITY_BUILD_MODE BATCH
                                             UNITY_BUILD_BATCH_SIZE ${batch_size})
    foreach(src IN LISTS arg_SOURCES)
      get_filename_component(src_name "${src}" NAME)
      if(src_name STREQUAL "main_test.cpp")
        set_source_files_properties("${src}" PROPERTIES SKIP_UNITY_BUILD_INCLUSION ON)
      endif()
    endforeach()
  endif()
  target_link_libraries(${name} PRIVATE ${arg_LIBRARIES} Boost::unit_test_framework mla_warnings)
  # Release unit tests at -O2 (after CMake's -O3, so it wins): GCC's -O3-only passes cost a fifth of a test
  # file's compile (latent_norm_test: 26.4 -> 21.4 CPU s) and the suite runs in seconds either way. The tools
  # and benches stay at -O3, and the command-line tests run the tools.
  if(NOT arg_SOURCES MATCHES "\\.cu(;|$)")
    target_compile_options(${name} PRIVATE $<$<CONFIG:Release>:-O2>)
  endif()
  target_compile_definitions(${name} PRIVATE BOOST_TEST_DYN_LINK)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/support)
  set(excluded "")
  foreach(path IN LISTS arg_RESOURCE_CASES arg_SLOW_CASES)
    list(APPEND excluded "!${path}")
  endforeach()
  if(excluded)
    list(JOIN excluded ":" filter)
    add_test(NAME ${name} COMMAND ${name} --report_level=short --log_level=warning "--run_test=${filter}")
  else()
    add_test(NAME ${name} COMMAND ${name} --report_level=short --log_level=warning)
  endif()
  set_property(GLOBAL APPEND PROPERTY MLA_UNIT_TEST_TARGETS ${name})
  set_tests_properties(${name} PROPERTIES LABELS "unit;${arg_LABELS}")
  foreach(path IN LISTS arg_RESOURCE_CASES arg_SLOW_CASES)
    set(labels "unit;resource;${arg_LABELS}")
    if(path IN_LIST arg_SLOW_CASES)
      list(APPEND labels slow)
    endif()
    add_test(NAME ${name}/${path} COMMAND ${name} --report_level=short --log_level=warning "--run_test=${path}")
    set_tests_properties(${name}/${path} PROPERTIES LABELS "${labels}" SKIP_REGULAR_EXPRESSION "mla-test-skipped: ")
  endforeach()
endfunction()

# mla_add_compile_fail_test(<source> <regex>)
# Builds <source> (an EXCLUDE_FROM_ALL target) and passes when the compiler output matches <regex>,
# i.e. the intended static_assert fired (the exit code alone cannot tell it from an unrelated error).
function(mla_add_compile_fail_test source regex)
  get_filename_component(stem ${source} NAME_WE)
  set(target compile_fail_${stem})
  add_executable(${target} EXCLUDE_FROM_ALL ${source})
  target_link_libraries(${target} PRIVATE mla::core)
  set_target_properties(${target} PROPERTIES EXCLUDE_FROM_DEFAULT_BUILD ON)
  add_test(NAME ${target}
           COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target ${target} --config $<CONFIG>)
  set_tests_properties(${target} PROPERTIES PASS_REGULAR_EXPRESSION "${regex}" LABELS compile_fail
                                            RESOURCE_LOCK mla_build_tree)
endfunction()

# mla_add_compile_pass_test(<source>): the positive twin; must build.
function(mla_add_compile_pass_test source)
  get_filename_component(stem ${source} NAME_WE)
  set(target compile_pass_${stem})
  add_executable(${target} EXCLUDE_FROM_ALL ${source})
  target_link_libraries(${target} PRIVATE mla::core)
  add_test(NAME ${target}
           COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target ${target} --config $<CONFIG>)
  set_tests_properties(${target} PROPERTIES LABELS compile_fail RESOURCE_LOCK mla_build_tree)
endfunction()

# mla_add_header_tests(<target> <extension> <language> <folder>=<library>...)
# One generated translation unit per public header, `#include <mla/...>` twice (include guards), compiled
# against the library target of the header's folder alone (`.` names the umbrella headers in include/mla/),
# one object library per folder (<target>_<folder>); <target> builds them all. A header that includes
# something its folder's target does not provide fails here: io/ and tokenizer/ headers, compiled with
# mla::io and mla::tokenizer, have no Eigen on their include path. .hpp headers compile as C++ with no CUDA
# include path; .cuh headers compile as CUDA (only when CUDA is enabled). A folder without a library is an
# error, so a new folder must say which target it belongs to.
function(mla_add_header_tests target ext lang)
  file(GLOB_RECURSE headers RELATIVE "${PROJECT_SOURCE_DIR}/include" CONFIGURE_DEPENDS
       "${PROJECT_SOURCE_DIR}/include/mla/*.${ext}")
  set(folders)
  foreach(h IN LISTS headers)
    string(REGEX REPLACE "^mla/([^/]+)/.*" "\\1" folder "${h}")
    if(folder STREQUAL h)
      set(folder ".")
    endif()
    set(library)
    foreach(pair IN LISTS ARGN)
      if(pair MATCHES "^([^=]+)=(.+)$" AND CMAKE_MATCH_1 STREQUAL folder)
        set(library "${CMAKE_MATCH_2}")
      endif()
    endforeach()
    if(NOT library)
      message(FATAL_ERROR "mla_add_header_tests: header '${h}' is in folder '${folder}', which has no library "
                          "target (add ${folder}=<target> in tests/CMakeLists.txt)")
    endif()
    string(MAKE_C_IDENTIFIER "${h}" id)
    if(lang STREQUAL "CUDA")
      set(src "${CMAKE_CURRENT_BINARY_DIR}/header_tests/${id}.cu")
    else()
      set(src "${CMAKE_CURRENT_BINARY_DIR}/header_tests/${id}.cpp")
    endif()
    file(CONFIGURE OUTPUT "${src}" CONTENT "#include <${h}>\n#include <${h}>\nint mla_header_test_${id}() { return 0; }\n")
    string(MAKE_C_IDENTIFIER "${folder}" folder_id)
    if(folder STREQUAL ".")
      set(folder_id "umbrella")
    endif()
    if(NOT folder_id IN_LIST folders)
      list(APPEND folders ${folder_id})
      set(library_${folder_id} "${library}")
      set(sources_${folder_id})
    endif()
    list(APPEND sources_${folder_id} "${src}")
  endforeach()
  if(NOT folders)
    return()
  endif()
  add_custom_target(${target} ALL)
  foreach(folder_id IN LISTS folders)
    add_library(${target}_${folder_id} OBJECT ${sources_${folder_id}})
    target_link_libraries(${target}_${folder_id} PRIVATE ${library_${folder_id}} mla_warnings)
    add_dependencies(${target} ${target}_${folder_id})
  endforeach()
  # Compiling the libraries is the test: they are built by the default build, and a CTest entry
  # rebuilds them so that a stale build tree cannot hide a broken header.
  add_test(NAME ${target} COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target ${target})
  set_tests_properties(${target} PROPERTIES LABELS headers RESOURCE_LOCK mla_build_tree)
endfunction()

# mla_add_umbrella_test(<name> <umbrella header> <extension>)
# A CTest entry that fails when a public header with <extension> (include/mla/**/*.<extension>) is not
# #included by the umbrella header (cmake/check_umbrella.cmake names the missing ones).
function(mla_add_umbrella_test name umbrella ext)
  add_test(NAME ${name}
           COMMAND ${CMAKE_COMMAND} -DINCLUDE_DIR=${PROJECT_SOURCE_DIR}/include -DUMBRELLA=${umbrella}
                   -DEXTENSION=${ext} -P ${PROJECT_SOURCE_DIR}/cmake/check_umbrella.cmake)
  set_tests_properties(${name} PROPERTIES LABELS headers)
endfunction()
