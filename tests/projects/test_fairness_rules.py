"""Fair-competition rules (公平竞争审查规则): for each rule, sentences it must flag and
compliant sentences that look alike and must not be flagged by any rule."""

from __future__ import annotations

import pytest

from bidding.projects.fairness import Clause, load_rules, review_document

POSITIVE = [
    ("R01", "本项目交换机采用华为或同等品牌产品。", False, False),
    ("R01", "低压配电柜断路器品牌：西门子。", False, False),
    ("R01", "推荐品牌：施耐德、ABB、正泰。", True, False),
    ("R01", "电梯须采用三菱或相当于三菱档次的产品。", False, True),
    ("R01", "投标产品须采用XX科技有限公司生产的专用控制器。", True, False),
    ("R01", "设备须原产于德国。", True, False),
    ("R02", "投标人须是在本市注册的企业。", False, True),
    ("R02", "须在本市注册的企业方可参加投标。", False, True),
    ("R02", "投标人须在本地设立分支机构。", True, False),
    ("R02", "投标人须在拉萨市设有售后服务网点。", True, False),
    ("R02", "近三年在本省完成的类似工程业绩每项加2分。", False, True),
    ("R02", "项目经理须在本市缴纳社会保险满6个月。", False, True),
    ("R02", "外地企业须办理进藏备案手续。", False, True),
    ("R02", "投标人须与本地企业组成联合体。", False, True),
    ("R02", "注册地须为西藏自治区。", False, False),
    ("R03", "本项目仅限国有企业参加。", False, False),
    ("R03", "民营企业不得参与本项目投标。", False, False),
    ("R03", "投标人须为国有独资或国有控股企业。", True, False),
    ("R03", "投标人为上市公司的加2分。", True, False),
    ("R03", "投标人不得为民营企业。", False, False),
    ("R04", "投标人注册资本不低于5000万元。", False, True),
    ("R04", "投标人近三年年均营业收入不少于1亿元。", True, False),
    ("R04", "投标人成立时间不少于5年。", True, False),
    ("R04", "企业成立满三年。", False, False),
    ("R04", "注册资金每增加100万元加1分，最高5分。", True, False),
    ("R04", "从业人员100人以上。", True, False),
    ("R05", "投标人须获得省级以上表彰。", False, False),
    ("R05", "投标人须具有建筑工程施工总承包特级资质。", False, True),
    ("R05", "投标人须具有AAA级信用等级证书。", True, False),
    ("R05", "投标人须通过ISO9001质量管理体系认证。", True, False),
    ("R06", "投标人须提供制造商针对本项目的授权书。", True, False),
    ("R06", "投标时须提交原厂授权及售后服务承诺函。", True, False),
    ("R06", "投标人应提供生产厂家授权书，否则投标无效。", True, False),
    ("R07", "投标人须为XX省建筑业协会会员单位。", False, True),
    ("R07", "须提供本省颁发的安全生产许可证。", False, True),
    ("R07", "投标人须持有中国XX行业协会颁发的等级证书。", True, False),
    ("R08", "投标人须使用BJCA数字证书对投标文件签章。", False, False),
    ("R08", "本平台只支持湖南CA锁。", False, False),
    ("R08", "投标人须使用指定的投标文件制作工具。", True, False),
    ("R08", "须购买XX公司的计价软件编制投标文件。", False, True),
    ("R09", "投标人须为集团公司合格供应商名录内企业。", False, False),
    ("R09", "仅限已入库企业参加投标。", False, True),
    ("R09", "本项目从预选供应商中邀请三家参加。", True, False),
    ("R10", "在合格投标人中采用抽签方式确定中标人。", False, True),
    ("R10", "通过资格审查的投标人以摇号方式确定中标候选人。", False, True),
    ("R10", "采用电脑随机抽取方式确定成交供应商。", True, False),
    ("R11", "法定代表人须亲自到场参加开标会。", False, True),
    ("R11", "开标时投标人须携带营业执照原件到现场核验。", False, True),
    ("R11", "请于2024年5月10日至14日到招标代理公司现场购买招标文件。", False, False),
    ("R11", "项目经理未到场的，其投标将被否决。", False, True),
    ("R12", "投标人须缴纳诚信保证金5万元。", False, True),
    ("R12", "投标保证金只接受现金。", False, False),
    ("R12", "投标保证金仅接受银行保函。", True, False),
    ("R12", "投标保函须由中国建设银行出具。", False, False),
    ("R12", "投标保证金为项目估算价的3%。", False, False),
    ("R12", "投标保证金：人民币90万元。", False, True),
    ("R12", "投标保证金：人民币玖拾万元整。", False, True),
    ("R12", "履约保证金为中标合同金额的15%。", True, False),
    ("R12", "投标保证金为项目预算的百分之三。", True, False),
    ("R12", "中标服务费从中标人的投标保证金中扣除。", True, False),
    ("R12", "投标保证金在工程竣工审计后无息退还。", False, True),
    ("R13", "本项目最低投标限价为300万元。", False, True),
    ("R13", "投标报价低于招标控制价的85%的，按废标处理。", False, True),
    ("R13", "投标人必须组成联合体参加投标。", False, True),
    ("R13", "投标人须与设计单位组成联合体。", False, True),
    ("R14", "投标截止时间为发出招标文件之日起15日。", False, False),
    ("R14", "招标文件发售期为3日。", False, False),
    ("R14", "采购文件获取期限为自公告发布之日起3个工作日。", True, False),
    ("R14", "评标办法于开标前另行制定。", False, False),
    ("R14", "招标人对招标文件的澄清或者修改，应当在投标截止时间至少10日前发出。", False, False),
    ("R14", "获取时间：2024年5月10日至2024年5月12日。", False, False),
]
NEGATIVE = [
    ("R01", "投标人不得指定品牌。", False, False),
    ("R01", "招标文件不得要求或者标明特定的生产供应者。", False, False),
    ("R01", "品牌：由投标人自报。", True, False),
    ("R01", "复印件与原件具有同等法律效力。", False, False),
    ("R01", "所投产品品牌不限，满足技术参数即可。", True, False),
    ("R02", "不得要求在本地注册。", False, True),
    ("R02", "本项目不限制注册地。", False, True),
    ("R02", "投标人无需在本地设立分支机构。", True, False),
    ("R02", "中标后须在项目所在地设立售后服务网点。", True, False),
    ("R02", "对外地企业和本地企业一视同仁。", False, True),
    ("R02", "投标人须在全国公共资源交易平台（西藏自治区）注册并下载招标文件。", False, True),
    ("R03", "本项目不限制投标人的所有制形式。", False, False),
    ("R03", "国有企业、民营企业均可参加。", False, False),
    ("R03", "投标人应为依法设立的法人或者其他组织。", False, False),
    ("R04", "不得将注册资本、资产总额、营业收入等规模条件作为资格要求。", True, False),
    ("R04", "提供中小企业声明函（从业人员、营业收入、资产总额）。", True, False),
    ("R04", "提供近三年经审计的财务报告，成立不满三年的提供成立以来的财务报告。", True, False),
    ("R04", "项目组人员不少于5人。", True, False),
    ("R05", "投标人须具有建筑工程施工总承包三级及以上资质。", False, True),
    ("R05", "不得将获奖情况作为资格条件。", False, False),
    ("R05", "投标人具有良好的商业信誉和健全的财务会计制度。", True, False),
    ("R06", "投标人须提供制造商授权书。", False, False),  # tendering: R06 is procurement only
    ("R06", "进口产品须提供制造商授权书。", True, False),
    ("R06", "无需提供制造商授权书。", True, False),
    ("R07", "不得要求投标人成为行业协会会员。", False, False),
    ("R07", "安全生产许可证由省级建设行政主管部门颁发。", False, True),
    ("R08", "投标人须使用CA数字证书对投标文件进行电子签章。", False, False),
    ("R08", "平台兼容各CA机构颁发的数字证书，全国互认。", False, False),
    ("R08", "投标文件制作工具可在交易平台免费下载。", False, False),
    ("R09", "不得设置供应商备选库、名录库。", True, False),
    ("R09", "评标专家从省综合评标专家库中随机抽取。", False, False),
    ("R09", "投标人未被列入经营异常名录或者严重违法失信名单。", True, False),
    ("R10", "不得采用抽签、摇号等方式确定中标人。", False, False),
    ("R10", "评标委员会成员由招标人从专家库中随机抽取确定。", False, False),
    ("R10", "评审得分且投标报价相同的，采取随机抽取方式确定成交供应商。", True, False),
    ("R11", "投标人无需到场参加开标，在线解密即可。", False, False),
    ("R11", "招标文件通过交易平台免费下载，不接受现场报名。", False, False),
    ("R11", "中标人签订合同时须提供资质证书原件核验。", False, True),
    ("R12", "投标保证金为估算价的1%。", False, False),
    ("R12", "投标保证金可以现金、银行保函、保证保险等形式提交。", False, True),
    ("R12", "投标保证金应当从投标人的基本账户转出。", False, True),
    ("R12", "履约保证金为中标合同金额的10%。", False, True),
    ("R12", "投标保证金：人民币50万元。", False, True),
    ("R12", "投标保证金：人民币90万元。", False, False),  # the ¥800,000 cap is for works
    ("R12", "投标人在投标有效期内撤销投标文件的，投标保证金不予退还。", False, False),
    ("R12", "投标保证金为10000元，本项目预算金额为2000万元。", True, False),
    ("R12", "投标保证金将在中标通知书发出后5日内连同银行同期存款利息退还。", False, True),
    ("R13", "本项目设有最高投标限价，投标报价超过最高投标限价的投标将被否决。", False, True),
    ("R13", "本项目接受联合体投标。", False, False),
    (
        "R13",
        "投标报价明显低于其他投标报价的，评标委员会应当要求其作出书面说明并提供证明材料。",
        True,
        False,
    ),
    ("R13", "本项目采用经评审的最低投标价法。", False, False),
    ("R14", "自招标文件开始发出之日起至投标截止之日止，不得少于20日。", False, False),
    ("R14", "招标文件发售期为5日。", False, False),
    ("R14", "获取时间：2024年5月13日至2024年5月17日。", True, False),
    ("R14", "澄清发出的时间距投标截止时间不足15日的，相应推迟投标截止时间。", False, False),
    ("R14", "评标委员会不得另行制定评标标准和方法。", False, False),
    ("R14", "投标有效期为投标截止之日起90日。", False, False),
]
NEGATIVE += [
    ("R02", "项目负责人须为投标人本单位在职人员，提供近6个月社保缴纳证明。", False, True),
    ("R02", "本项目资金来源为本市财政资金。", False, True),
    ("R02", "施工单位须在项目所在地设立项目部。", False, True),
    ("R02", "投标人须按照本地区建设工程计价依据编制投标报价。", False, True),
    ("R02", "在西藏自治区内完成的业绩不作为加分条件。", False, True),
    ("R03", "事业单位参与投标的，须提供事业单位法人证书。", True, False),
    ("R04", "注册资本（万元）：", False, True),
    ("R04", "项目经理须为注册满3年的一级建造师。", False, True),
    ("R04", "拟派项目负责人从业经验不少于5年。", True, False),
    (
        "R04",
        "投标人须具有类似项目业绩，即近三年完成过单项合同金额不低于1000万元的房屋建筑工程。",
        False,
        True,
    ),
    ("R05", "供应商具备ISO14001环境管理体系认证的，得1分。", True, False),
    ("R05", "产品须符合国家强制性标准，具有3C认证。", True, False),
    ("R06", "投标人须提供生产厂家出具的产品检测报告。", True, False),
    ("R06", "供应商应承诺所投产品为原厂正品。", True, False),
    ("R07", "评标委员会成员名单在中标结果确定前应当保密。", False, False),
    ("R08", "投标人须使用交易平台提供的投标文件制作工具编制投标文件。", False, False),
    ("R08", "开标时投标人须使用本单位CA锁在线解密。", False, False),
    ("R09", "通过资格审查的合格投标人名单将在平台公布。", False, False),
    ("R09", "本项目为框架协议采购，入围供应商按协议约定响应。", True, False),
    ("R10", "采用抽签方式确定投标人现场踏勘的顺序。", False, False),
    ("R10", "采用随机抽取方式确定被邀请的供应商。", True, False),
    ("R11", "法定代表人参加开标的，应携带本人身份证。", False, False),
    ("R11", "投标人应在投标截止时间前登录平台下载招标文件。", False, False),
    ("R12", "质量保证金为工程价款结算总额的3%。", False, True),
    ("R12", "预付款为合同价的30%。", False, True),
    ("R12", "履约保证金在工程竣工验收合格后28日内退还。", False, True),
    ("R12", "投标保证金为50万元，本项目估算价为3000万元。", False, True),
    ("R12", "投标保证金以电汇方式缴纳至以下账户：开户银行：中国建设银行日喀则分行。", False, True),
    ("R12", "投标保证金不超过采购项目预算金额的2%。", True, False),
    ("R13", "投标报价不得低于成本价。", False, True),
    ("R13", "联合体各方须签订联合体协议书。", False, True),
    ("R14", "资格预审申请文件提交截止时间为发售资格预审文件之日起5日。", False, False),
    ("R14", "招标文件发售期：自2024年5月13日起至2024年5月17日止（法定节假日除外）。", False, False),
    ("R14", "获取招标文件时间：2024年5月13日至5月17日，每日上午9:00-12:00。", False, False),
    ("R14", "投标截止时间：2024年6月11日9时30分，招标文件发出时间2024年5月13日。", False, False),
    ("R14", "评标委员会可以要求投标人对投标文件中含义不明确的内容作必要的澄清。", False, False),
]
POSITIVE += [
    ("R10", "投标人数量超过15家时，采用随机抽取方式确定参与投标的投标人。", False, True),
    ("R12", "保证金须以电汇方式提交。", False, True),
    ("R07", "项目经理须具有本省颁发的安全生产考核合格证书。", False, True),
    ("R06", "投标人为代理商的，须提供制造商授权书。", True, False),
    ("R05", "项目经理须获得过市级优秀项目经理称号。", False, True),
]


def _review(text: str, procurement: bool, works: bool) -> list[str]:
    findings = review_document([Clause(text, "段落 1")], procurement=procurement, works=works)
    return [f.rule_id for f in findings]


@pytest.mark.parametrize(("rule_id", "text", "procurement", "works"), POSITIVE)
def test_rule_flags(rule_id: str, text: str, procurement: bool, works: bool) -> None:
    assert rule_id in _review(text, procurement, works)


@pytest.mark.parametrize(("rule_id", "text", "procurement", "works"), NEGATIVE)
def test_compliant_sentence_not_flagged(
    rule_id: str, text: str, procurement: bool, works: bool
) -> None:
    assert _review(text, procurement, works) == []


def test_every_rule_has_two_true_and_two_false_positives() -> None:
    ids = [rule.id for rule in load_rules()]
    assert ids == [f"R{n:02d}" for n in range(1, 15)]
    for rule_id in ids:
        assert sum(1 for case in POSITIVE if case[0] == rule_id) >= 2, rule_id
        assert sum(1 for case in NEGATIVE if case[0] == rule_id) >= 2, rule_id
