# csc_module(): one module's static library, built twice.
#
#   csc_module(<name> SOURCES <files> HOOKED <files> [DEPS <modules>] [INCLUDE <dirs>] [PRIVATE_INCLUDE <dirs>]
#              [PUBLIC_LIBS <targets>] [PRIVATE_LIBS <targets>])
#
# <name>    the production library, linked by csc-server and csc-admin: no test hook in it.
# <name>_t  the same code compiled with -DCSC_TEST_HOOKS (public, so a test sees the hooks' declarations),
#           linked by the unit tests and by csc-server-test; it links the _t variants of DEPS.
# Only the HOOKED files (those with `#ifdef CSC_TEST_HOOKS`) are compiled twice; SOURCES are compiled once into
# <name>_common (an object library whose objects go into both archives) and must not mention CSC_TEST_HOOKS,
# which is checked here. DEPS are other csc_module() names.
function(csc_module name)
  cmake_parse_arguments(M "" "" "SOURCES;HOOKED;DEPS;INCLUDE;PRIVATE_INCLUDE;PUBLIC_LIBS;PRIVATE_LIBS" ${ARGN})
  foreach(_f ${M_SOURCES})
    file(STRINGS ${CMAKE_CURRENT_SOURCE_DIR}/${_f} _hit REGEX "CSC_TEST_HOOKS")
    if(_hit)
      message(FATAL_ERROR "${_f} uses CSC_TEST_HOOKS: list it under HOOKED in csc_module(${name})")
    endif()
  endforeach()
  set(_common_deps)
  foreach(_d ${M_DEPS})
    list(APPEND _common_deps ${_d}_common)
  endforeach()
  # Objects of an OBJECT library go only into the targets that link it directly; consumers further up get its
  # include directories and link dependencies.
  add_library(${name}_common OBJECT ${M_SOURCES})
  target_include_directories(${name}_common PUBLIC ${M_INCLUDE} PRIVATE ${M_PRIVATE_INCLUDE})
  target_link_libraries(${name}_common PUBLIC ${_common_deps} ${M_PUBLIC_LIBS} PRIVATE ${M_PRIVATE_LIBS})
  foreach(_v "" "_t")
    set(_deps)
    foreach(_d ${M_DEPS})
      list(APPEND _deps ${_d}${_v})
    endforeach()
    add_library(${name}${_v} STATIC ${M_HOOKED})
    target_include_directories(${name}${_v} PRIVATE ${M_PRIVATE_INCLUDE})
    target_link_libraries(${name}${_v} PUBLIC ${name}_common ${_deps} PRIVATE ${M_PRIVATE_LIBS})
  endforeach()
  target_compile_definitions(${name}_t PUBLIC CSC_TEST_HOOKS)
endfunction()
