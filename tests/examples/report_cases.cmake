# mla-convert --report (issue 30) on the real model, included from tests/examples/CMakeLists.txt (which defines
# mla_cli_test, ${convert}, ${small}, ${e2e}, ${fail} and ${blocked}). A cheap conversion with two end-to-end
# steps writes its report: index.html and report.json always; the pictures when gnuplot is installed (else the one
# note that says how to get them). A --report that exists, or whose parent is a file, fails before the model loads.
set(report_dir "${CMAKE_CURRENT_BINARY_DIR}/report")
file(MAKE_DIRECTORY "${report_dir}" "${report_dir}/taken")
mla_cli_test(cli_convert_report ARGS
  "-DCMD=${convert}|${small}|--kv-budget|0.5|--e2e-steps|2|${e2e}|--out|${report_dir}/conv|--report|${report_dir}/r"
  "-DCLEAN=${report_dir}/conv|${report_dir}/r" -DEXPECT=ok
  "-DMATCH=stage report.*wrote ${report_dir}/conv\nwrote ${report_dir}/r/index.html\n"
  "-DEXIST=${report_dir}/r/index.html|${report_dir}/r/report.json|${report_dir}/conv/model.safetensors")
mla_cli_test(cli_convert_report_exists ARGS
  "-DCMD=${convert}|${small}|--kv-budget|0.5|--out|${fail}/report_conv|--report|${report_dir}/taken" -DEXPECT=fail
  "-DMATCH=^mla-convert: error: --report: output '${report_dir}/taken' already exists" "-DABSENT=${fail}/report_conv")
mla_cli_test(cli_convert_report_under_a_file ARGS
  "-DCMD=${convert}|${small}|--kv-budget|0.5|--out|${fail}/report_conv2|--report|${blocked}/r" -DEXPECT=fail
  "-DMATCH=^mla-convert: error: --report: cannot create '${blocked}/r': '[^']*' is not a directory"
  "-DABSENT=${fail}/report_conv2")
