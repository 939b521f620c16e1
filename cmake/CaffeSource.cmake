# Obtains the pinned Caffe 1.0 source, verifies it, applies the project's patch
# set and lays the project's layers over it.
#
# Caffe is not vendored: researchers already have it (a checkout, a tarball) or
# can fetch it (GitHub archive, Debian source package).  Whatever the origin, the
# tree is checked against one pinned content digest, so every build compiles
# the same upstream code (BVLC/caffe at commit 99bd997).

set(SEPNETS_CAFFE_COMMIT "99bd99795dcdf0b1d3086a8d67ab1782a8a08383")
# sha256 of the Debian bullseye orig tarball (caffe 1.0.0+git20180821.99bd997).
set(SEPNETS_CAFFE_DEBIAN_VERSION "1.0.0+git20180821.99bd997-8")
set(SEPNETS_CAFFE_DEBIAN_ORIG "caffe_1.0.0+git20180821.99bd997.orig.tar.gz")
set(SEPNETS_CAFFE_DEBIAN_SHA256
    "e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c")
# Content digest of the upstream tree at that commit: sha256 over the sorted
# list of "<relative path> <sha256 of file>" lines (see sepnets_tree_digest).
# It does not depend on archive format, top-level folder or timestamps.
set(SEPNETS_CAFFE_TREE_DIGEST
    "b8cef929e3e41b0fb5ff13c7b28a2a82065df8abe632749502391fbebd52e901")
set(SEPNETS_CAFFE_GITHUB_URL
    "https://github.com/BVLC/caffe/archive/${SEPNETS_CAFFE_COMMIT}.tar.gz")

function(sepnets_fail what fix)
  message(FATAL_ERROR "sepnets: ${what} -- ${fix}")
endfunction()

# Content digest of a directory tree (ignores .git).
function(sepnets_tree_digest dir out_var)
  file(GLOB_RECURSE files RELATIVE "${dir}" LIST_DIRECTORIES false "${dir}/*")
  list(FILTER files EXCLUDE REGEX "^\\.git/")
  list(SORT files)
  set(manifest "")
  foreach(f IN LISTS files)
    file(SHA256 "${dir}/${f}" h)
    string(APPEND manifest "${f} ${h}\n")
  endforeach()
  string(SHA256 digest "${manifest}")
  set(${out_var} "${digest}" PARENT_SCOPE)
endfunction()

# If an archive or folder has a single top-level directory, return it.
function(sepnets_unwrap_single_dir dir out_var)
  file(GLOB entries LIST_DIRECTORIES true "${dir}/*" "${dir}/.*")
  list(LENGTH entries n)
  if(n EQUAL 1 AND IS_DIRECTORY "${entries}")
    set(${out_var} "${entries}" PARENT_SCOPE)
  else()
    set(${out_var} "${dir}" PARENT_SCOPE)
  endif()
endfunction()

# Fetch the orig tarball of the Debian source package into download_dir.
function(sepnets_fetch_debian download_dir out_var)
  set(tarball "${download_dir}/${SEPNETS_CAFFE_DEBIAN_ORIG}")
  if(NOT EXISTS "${tarball}")
    find_program(APT_GET apt-get)
    if(NOT APT_GET)
      sepnets_fail("apt-get not found, cannot fetch the Debian source package"
        "pass -DSEPNETS_CAFFE_SOURCE=<tarball or checkout> or -DSEPNETS_CAFFE_FROM=github")
    endif()
    message(STATUS "sepnets: apt-get source --download-only caffe=${SEPNETS_CAFFE_DEBIAN_VERSION}")
    execute_process(
      COMMAND ${APT_GET} source --download-only -q
              "caffe=${SEPNETS_CAFFE_DEBIAN_VERSION}"
      WORKING_DIRECTORY "${download_dir}"
      RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0 OR NOT EXISTS "${tarball}")
      sepnets_fail("apt-get source caffe=${SEPNETS_CAFFE_DEBIAN_VERSION} failed (no deb-src entry for bullseye?)"
        "run 'bash scripts/setup.sh' (it adds one from your Debian mirror) or pass -DSEPNETS_CAFFE_SOURCE=...")
    endif()
  endif()
  file(SHA256 "${tarball}" h)
  if(NOT h STREQUAL SEPNETS_CAFFE_DEBIAN_SHA256)
    sepnets_fail("${tarball} has sha256 ${h}, expected ${SEPNETS_CAFFE_DEBIAN_SHA256}"
      "delete it and configure again")
  endif()
  set(${out_var} "${tarball}" PARENT_SCOPE)
endfunction()

# Download the GitHub archive of the pinned commit into download_dir.
function(sepnets_fetch_github download_dir out_var)
  set(tarball "${download_dir}/caffe-${SEPNETS_CAFFE_COMMIT}.tar.gz")
  if(NOT EXISTS "${tarball}")
    message(STATUS "sepnets: downloading ${SEPNETS_CAFFE_GITHUB_URL}")
    file(DOWNLOAD "${SEPNETS_CAFFE_GITHUB_URL}" "${tarball}.part" STATUS st)
    list(GET st 0 code)
    if(NOT code EQUAL 0)
      file(REMOVE "${tarball}.part")
      list(GET st 1 msg)
      sepnets_fail("download of ${SEPNETS_CAFFE_GITHUB_URL} failed: ${msg}"
        "download it by hand and pass -DSEPNETS_CAFFE_SOURCE=<file>")
    endif()
    file(RENAME "${tarball}.part" "${tarball}")
  endif()
  set(${out_var} "${tarball}" PARENT_SCOPE)
endfunction()

# Put a pristine, verified copy of the Caffe tree into out_dir.
function(sepnets_pristine_caffe origin download_dir out_dir)
  file(REMOVE_RECURSE "${out_dir}")
  file(MAKE_DIRECTORY "${out_dir}")
  if(IS_DIRECTORY "${origin}")
    if(EXISTS "${origin}/.git")
      # A git checkout: take the committed tree, ignoring build products.
      find_program(GIT git)
      execute_process(COMMAND ${GIT} -C "${origin}" rev-parse HEAD
        OUTPUT_VARIABLE head OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
      if(NOT rc EQUAL 0)
        sepnets_fail("${origin} is not a readable git checkout" "check the path")
      endif()
      execute_process(COMMAND ${GIT} -C "${origin}" archive --format=tar
                      -o "${out_dir}.tar" HEAD RESULT_VARIABLE rc)
      if(NOT rc EQUAL 0)
        sepnets_fail("git archive failed in ${origin}" "check the checkout")
      endif()
      file(ARCHIVE_EXTRACT INPUT "${out_dir}.tar" DESTINATION "${out_dir}")
      file(REMOVE "${out_dir}.tar")
      message(STATUS "sepnets: Caffe from git checkout ${origin} at ${head}")
    else()
      file(COPY "${origin}/" DESTINATION "${out_dir}")
      message(STATUS "sepnets: Caffe from folder ${origin}")
    endif()
    set(tree "${out_dir}")
  else()
    if(NOT EXISTS "${origin}")
      sepnets_fail("Caffe source ${origin} does not exist"
        "give a tarball or checkout of BVLC/caffe ${SEPNETS_CAFFE_COMMIT}")
    endif()
    file(SHA256 "${origin}" h)
    message(STATUS "sepnets: Caffe from archive ${origin} (sha256 ${h})")
    file(ARCHIVE_EXTRACT INPUT "${origin}" DESTINATION "${out_dir}")
    sepnets_unwrap_single_dir("${out_dir}" tree)
  endif()
  if(NOT EXISTS "${tree}/src/caffe/proto/caffe.proto")
    sepnets_fail("${origin} does not hold a Caffe source tree (no src/caffe/proto/caffe.proto)"
      "give a tarball or checkout of BVLC/caffe ${SEPNETS_CAFFE_COMMIT}")
  endif()
  sepnets_tree_digest("${tree}" digest)
  if(NOT digest STREQUAL SEPNETS_CAFFE_TREE_DIGEST)
    sepnets_fail("${origin} is not Caffe at commit ${SEPNETS_CAFFE_COMMIT} (tree digest ${digest}, expected ${SEPNETS_CAFFE_TREE_DIGEST})"
      "use the pinned commit, or remove local edits from the checkout")
  endif()
  if(NOT tree STREQUAL out_dir)
    file(RENAME "${tree}" "${out_dir}.tmp")
    file(REMOVE_RECURSE "${out_dir}")
    file(RENAME "${out_dir}.tmp" "${out_dir}")
  endif()
endfunction()

# Obtain, verify and patch Caffe into src_dir; re-done only when the origin or
# the patch set changes.  Patched files are synced with their timestamps kept
# where unchanged, so a patch edit rebuilds only what it touches.
function(sepnets_prepare_caffe src_dir)
  set(download_dir "${SEPNETS_DOWNLOAD_DIR}")
  file(MAKE_DIRECTORY "${download_dir}")
  # The environment fixes first, then the project's own changes to Caffe.
  file(GLOB patches "${PROJECT_SOURCE_DIR}/cmake/patches/*.patch")
  file(GLOB layer_patches "${PROJECT_SOURCE_DIR}/caffe_layers/patches/*.patch")
  list(SORT patches)
  list(SORT layer_patches)
  list(APPEND patches ${layer_patches})
  set(key "${SEPNETS_CAFFE_FROM}|${SEPNETS_CAFFE_SOURCE}|${SEPNETS_CAFFE_TREE_DIGEST}")
  foreach(p IN LISTS patches)
    file(SHA256 "${p}" h)
    string(APPEND key "|${h}")
  endforeach()
  string(SHA256 key "${key}")
  set(stamp "${src_dir}/.sepnets-stamp")
  if(EXISTS "${stamp}")
    file(READ "${stamp}" old)
    if(old STREQUAL key)
      return()
    endif()
  endif()

  if(SEPNETS_CAFFE_SOURCE)
    set(origin "${SEPNETS_CAFFE_SOURCE}")
  elseif(SEPNETS_CAFFE_FROM STREQUAL "debian")
    sepnets_fetch_debian("${download_dir}" origin)
  elseif(SEPNETS_CAFFE_FROM STREQUAL "github")
    sepnets_fetch_github("${download_dir}" origin)
  else()
    sepnets_fail("SEPNETS_CAFFE_FROM=${SEPNETS_CAFFE_FROM} is unknown"
      "use debian or github, or set SEPNETS_CAFFE_SOURCE")
  endif()

  set(work "${CMAKE_BINARY_DIR}/caffe-prepare")
  sepnets_pristine_caffe("${origin}" "${download_dir}" "${work}")

  find_program(PATCH_EXECUTABLE patch)
  if(NOT PATCH_EXECUTABLE)
    sepnets_fail("the 'patch' program is missing" "apt-get install patch")
  endif()
  foreach(p IN LISTS patches)
    get_filename_component(name "${p}" NAME)
    execute_process(COMMAND ${PATCH_EXECUTABLE} -p1 --forward --quiet -i "${p}"
      WORKING_DIRECTORY "${work}" RESULT_VARIABLE rc
      OUTPUT_VARIABLE out ERROR_VARIABLE out)
    if(NOT rc EQUAL 0)
      sepnets_fail("patch ${name} does not apply: ${out}" "fix the patch for commit ${SEPNETS_CAFFE_COMMIT}")
    endif()
    message(STATUS "sepnets: applied ${name}")
  endforeach()

  # Copy only files whose content changed, so their timestamps (and the
  # build) stay put otherwise.
  file(GLOB_RECURSE files RELATIVE "${work}" LIST_DIRECTORIES false "${work}/*")
  foreach(f IN LISTS files)
    get_filename_component(d "${src_dir}/${f}" DIRECTORY)
    file(MAKE_DIRECTORY "${d}")
    file(COPY_FILE "${work}/${f}" "${src_dir}/${f}" ONLY_IF_DIFFERENT)
  endforeach()
  file(REMOVE_RECURSE "${work}")
  file(WRITE "${stamp}" "${key}")
endfunction()

# Lay caffe_layers/ over the Caffe tree.  configure_file makes every overlay
# file a configure dependency, so editing one re-runs this step and the build.
function(sepnets_overlay_layers layers_dir src_dir)
  file(GLOB_RECURSE files RELATIVE "${layers_dir}"
       "${layers_dir}/include/*" "${layers_dir}/src/*")
  set(listed "")
  foreach(f IN LISTS files)
    configure_file("${layers_dir}/${f}" "${src_dir}/${f}" COPYONLY)
    list(APPEND listed "${f}")
  endforeach()
  # Remove files a previous configure laid down that are gone from caffe_layers/.
  set(manifest "${src_dir}/.sepnets-overlay")
  if(EXISTS "${manifest}")
    file(STRINGS "${manifest}" old)
    foreach(f IN LISTS old)
      if(NOT f IN_LIST listed)
        file(REMOVE "${src_dir}/${f}")
        message(STATUS "sepnets: removed stale overlay file ${f}")
      endif()
    endforeach()
  endif()
  string(REPLACE ";" "\n" text "${listed}")
  file(WRITE "${manifest}" "${text}\n")
  set(SEPNETS_OVERLAY_FILES "${listed}" PARENT_SCOPE)
endfunction()
