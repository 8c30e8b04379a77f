# drawn by mla-convert --report (mla::inspect::write_conversion_report); redraw with: gnuplot distill.gp
if (!exists('suffix')) suffix = ''  # run_gnuplot sets '.tmp' and renames the outputs afterwards
set title 'Layer-wise distillation: held-out relative squared error' noenhanced
set xlabel 'layer' noenhanced
set ylabel 'held-out loss (log)' noenhanced
set grid ytics lc rgb '#dddddd'
set key outside right top noenhanced
set tics font ',10'
set datafile missing 'NaN'
set logscale y
set format y '%.0e'
set autoscale xfix
set offsets 0.5, 0.5, 0, 0
set terminal pngcairo size 900,500 font 'DejaVu Sans,11' noenhanced
set output 'distill.png'.suffix
plot 'distill.dat' using 1:2 with linespoints pt 7 ps 0.6 lw 1.5 title 'before', '' using 1:3 with linespoints pt 7 ps 0.6 lw 1.5 title 'after'
set terminal svg size 900,500 font 'DejaVu Sans,11' noenhanced background '#ffffff'
set output 'distill.svg'.suffix
replot
unset output
