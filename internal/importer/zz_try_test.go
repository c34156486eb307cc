package importer
import ("fmt"; "os"; "testing")
func TestZZTry(t *testing.T) {
	p := os.Getenv("TRY_PATH"); if p == "" { t.Skip() }
	res, err := Import(os.Getenv("TRY_FMT"), p, Options{})
	if err != nil { t.Fatal(err) }
	fmt.Print(res.Report.Text())
	for _, a := range res.Apps { b, _ := a.Config.MarshalTOML(""); fmt.Printf("--- %s\n%s", a.Name, b) }
}
