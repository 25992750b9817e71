package report

import (
	"fmt"
	"image/color"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Series is one line of a chart.
type Series struct {
	Name   string
	Points []Point
	// Dashed draws a reference line (a target, a capacity).
	Dashed bool
}

// Marker is a vertical line at X (an event such as a leader kill).
type Marker struct {
	X    float64
	Name string
}

// Chart is one line chart.
type Chart struct {
	Title, XLabel, YLabel string
	Series                []Series
	Markers               []Marker
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
}

// Save draws the chart as an SVG (or PNG, by path's extension) of 8×4
// inches.
func (c Chart) Save(path string) error {
	p := plot.New()
	p.Title.Text = c.Title
	p.X.Label.Text = c.XLabel
	p.Y.Label.Text = c.YLabel
	p.Y.Min = 0
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	for i, s := range c.Series {
		if len(s.Points) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(s.Points))
		for k, pt := range s.Points {
			xys[k] = plotter.XY{X: pt.X, Y: pt.Y}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("chart %q, series %q: %w", c.Title, s.Name, err)
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.2)
		if s.Dashed {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	// Headroom for the legend above the data.
	p.Y.Max *= 1.3
	for _, m := range c.Markers {
		ymax := p.Y.Max
		l, err := plotter.NewLine(plotter.XYs{{X: m.X, Y: 0}, {X: m.X, Y: ymax}})
		if err != nil {
			return err
		}
		l.Color = color.Gray{Y: 0x80}
		l.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		p.Add(l)
		if m.Name != "" {
			lb, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: m.X, Y: ymax}}, Labels: []string{m.Name}})
			if err == nil {
				for i := range lb.TextStyle {
					lb.TextStyle[i].Font.Size = vg.Points(7)
					lb.TextStyle[i].YAlign = draw.YTop
				}
				p.Add(lb)
			}
		}
	}
	return p.Save(8*vg.Inch, 4*vg.Inch, path)
}
