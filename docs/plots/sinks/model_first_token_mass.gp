# drawn by mla-inspect (mla::inspect::write_heatmap); redraw with: gnuplot model_first_token_mass.gp
if (!exists('suffix')) suffix = ''  # run_gnuplot sets '.tmp' and renames the outputs afterwards
set title 'Attention mass on the first token'."\n".'SmolLM2-135M-Instruct.Q4_1.gguf, 300 tokens' noenhanced
set xlabel 'query head' noenhanced
set ylabel 'layer' noenhanced
set cblabel 'mean p(key 0)' noenhanced
set xrange [-0.5:9-0.5]
set yrange [-0.5:30-0.5]
set xtics 0,1 out nomirror
set ytics 0,2 out nomirror
set palette defined (0 '#440154', 0.25 '#3b528b', 0.5 '#21918c', 0.75 '#5ec962', 1 '#fde725')
set tics font ',11'
set key off
set terminal pngcairo size 1000,720 font 'DejaVu Sans,13' noenhanced
set output 'model_first_token_mass.png'.suffix
plot 'model_first_token_mass.dat' matrix with image
set terminal svg size 1000,720 font 'DejaVu Sans,13' noenhanced background '#ffffff'
set output 'model_first_token_mass.svg'.suffix
replot
unset output
