# drawn by mla-inspect (mla::inspect::write_heatmap); redraw with: gnuplot model_sink_mass.gp
if (!exists('suffix')) suffix = ''  # run_gnuplot sets '.tmp' and renames the outputs afterwards
set title 'Attention mass on the learned sink'."\n".'goss, 300 tokens' noenhanced
set xlabel 'query head' noenhanced
set ylabel 'layer' noenhanced
set cblabel 'mean p(sink)' noenhanced
set xrange [-0.5:8-0.5]
set yrange [-0.5:4-0.5]
set xtics 0,1 out nomirror
set ytics 0,1 out nomirror
set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', 0.75 '#5ec962', 1 '#fde725')
set tics font ',11'
set key off
set terminal pngcairo size 1000,720 font 'DejaVu Sans,13' noenhanced
set output 'model_sink_mass.png'.suffix
plot 'model_sink_mass.dat' matrix with image
set terminal svg size 1000,720 font 'DejaVu Sans,13' noenhanced background '#ffffff'
set output 'model_sink_mass.svg'.suffix
replot
unset output
