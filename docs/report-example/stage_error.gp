# drawn by mla-convert --report (mla::inspect::write_conversion_report); redraw with: gnuplot stage_error.gp
if (!exists('suffix')) suffix = ''  # run_gnuplot sets '.tmp' and renames the outputs afterwards
set title 'Stage report: relative error of attention outputs' noenhanced
set xlabel 'layer' noenhanced
set ylabel 'relative error (log)' noenhanced
set grid ytics lc rgb '#dddddd'
set key outside right top noenhanced
set tics font ',10'
set datafile missing 'NaN'
set logscale y
set format y '%.0e'
set xrange [-0.5:30-0.5]
set terminal pngcairo size 900,500 font 'DejaVu Sans,11' noenhanced
set output 'stage_error.png'.suffix
plot 'stage_error.dat' using 1:2 with linespoints pt 7 ps 0.8 lw 1.5 title 'exact', 'stage_error.dat' using 1:3 with linespoints pt 5 ps 0.8 lw 1.5 title 'rope_split', 'stage_error.dat' using 1:4 with linespoints pt 9 ps 0.8 lw 1.5 title 'factorized', 'stage_error.dat' using 1:5 with linespoints pt 11 ps 0.8 lw 1.5 title 'distill', 'stage_error.dat' using 1:6 with linespoints pt 13 ps 0.8 lw 1.5 title 'e2e'
set terminal svg size 900,500 font 'DejaVu Sans,11' noenhanced background '#ffffff'
set output 'stage_error.svg'.suffix
replot
unset output
