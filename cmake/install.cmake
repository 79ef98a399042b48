# SPDX-License-Identifier: MIT
# Install rules: public headers, the `deltaprop` library, the exported target deltaprop::deltaprop
# with a config and version file, and a pkg-config file. Every destination is relative to the install
# prefix, so the tree can be moved (the Python wheel installs it under site-packages/deltaprop).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# The Python package looks for lib/cmake and lib/pkgconfig, whatever GNUInstallDirs would pick here.
if(SKBUILD)
  set(DP_INSTALL_LIBDIR lib)
else()
  set(DP_INSTALL_LIBDIR ${CMAKE_INSTALL_LIBDIR})
endif()
set(DP_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR})
set(DP_INSTALL_CMAKEDIR ${DP_INSTALL_LIBDIR}/cmake/deltaprop)
set(DP_INSTALL_PKGCONFIGDIR ${DP_INSTALL_LIBDIR}/pkgconfig)

file(GLOB DP_PUBLIC_HEADERS CONFIGURE_DEPENDS
     ${CMAKE_CURRENT_SOURCE_DIR}/csrc/include/deltaprop/*.h
     ${CMAKE_CURRENT_SOURCE_DIR}/csrc/include/deltaprop/*.hpp)
install(FILES ${DP_PUBLIC_HEADERS} DESTINATION ${DP_INSTALL_INCLUDEDIR}/deltaprop COMPONENT dev)

# The target itself carries $<INSTALL_INTERFACE:include>; add the include dir only if it differs.
set(DP_INCLUDES_DESTINATION)
if(NOT DP_INSTALL_INCLUDEDIR STREQUAL "include")
  set(DP_INCLUDES_DESTINATION INCLUDES DESTINATION ${DP_INSTALL_INCLUDEDIR})
endif()
install(TARGETS deltaprop EXPORT deltaprop-targets
  ARCHIVE DESTINATION ${DP_INSTALL_LIBDIR} COMPONENT dev
  LIBRARY DESTINATION ${DP_INSTALL_LIBDIR} COMPONENT runtime
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime
  ${DP_INCLUDES_DESTINATION})
install(EXPORT deltaprop-targets NAMESPACE deltaprop:: FILE deltaprop-targets.cmake
  DESTINATION ${DP_INSTALL_CMAKEDIR} COMPONENT dev)

if(APPLE OR CMAKE_CXX_COMPILER_ID MATCHES "Clang" AND CMAKE_CXX_FLAGS MATCHES "-stdlib=libc\\+\\+")
  set(DP_CXX_RUNTIME c++)
else()
  set(DP_CXX_RUNTIME stdc++)
endif()
# As link flags: CMake drops a bare "m" from a C link line.
set(DP_CXX_RUNTIME_LIBS "-l${DP_CXX_RUNTIME}")
if(NOT APPLE)
  string(APPEND DP_CXX_RUNTIME_LIBS " -lm")
endif()
configure_package_config_file(
  ${CMAKE_CURRENT_SOURCE_DIR}/cmake/deltaprop-config.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/deltaprop-config.cmake
  INSTALL_DESTINATION ${DP_INSTALL_CMAKEDIR})
# 0.x: minor versions may break the API, so 0.1 accepts 0.1.y only; from 1.0 on, the same major.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(DP_VERSION_COMPAT SameMinorVersion)
else()
  set(DP_VERSION_COMPAT SameMajorVersion)
endif()
write_basic_package_version_file(
  ${CMAKE_CURRENT_BINARY_DIR}/deltaprop-config-version.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY ${DP_VERSION_COMPAT})
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/deltaprop-config.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/deltaprop-config-version.cmake
        DESTINATION ${DP_INSTALL_CMAKEDIR} COMPONENT dev)

# pkg-config: the prefix is found from the .pc file's own directory (${pcfiledir}), so the installed
# tree stays relocatable. A static library needs its private dependencies on the link line of a C
# program: the thread library, the C++ runtime and libm.
if(IS_ABSOLUTE "${DP_INSTALL_LIBDIR}")
  set(DP_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH DP_PC_TO_PREFIX
       ${CMAKE_INSTALL_PREFIX}/${DP_INSTALL_PKGCONFIGDIR} ${CMAKE_INSTALL_PREFIX})
  string(REGEX REPLACE "/$" "" DP_PC_TO_PREFIX "${DP_PC_TO_PREFIX}")
  set(DP_PC_PREFIX "\${pcfiledir}/${DP_PC_TO_PREFIX}")
endif()
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${DP_INSTALL_${dir}}")
    set(DP_PC_${dir} "${DP_INSTALL_${dir}}")
  else()
    set(DP_PC_${dir} "\${prefix}/${DP_INSTALL_${dir}}")
  endif()
endforeach()
set(DP_PC_DEPS "-pthread -l${DP_CXX_RUNTIME}")
if(NOT APPLE)
  string(APPEND DP_PC_DEPS " -lm")
endif()
if(BUILD_SHARED_LIBS)
  set(DP_PC_LIBS "-L\${libdir} -ldeltaprop")
  set(DP_PC_LIBS_PRIVATE "${DP_PC_DEPS}")
  set(DP_PC_CFLAGS "-I\${includedir} -DDELTAPROP_SHARED")
else()
  set(DP_PC_LIBS "-L\${libdir} -ldeltaprop ${DP_PC_DEPS}")
  set(DP_PC_LIBS_PRIVATE "")
  set(DP_PC_CFLAGS "-I\${includedir}")
endif()
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/deltaprop.pc.in
               ${CMAKE_CURRENT_BINARY_DIR}/deltaprop.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/deltaprop.pc
        DESTINATION ${DP_INSTALL_PKGCONFIGDIR} COMPONENT dev)
