#!/usr/bin/env python3
"""Deterministically expand hand-written fact tables into two small corpus files.

Writes (next to this script):
  zh_generated_facts.txt  -- Chinese provinces and chemical elements
  en_generated_facts.txt  -- chemical elements and Chinese provinces, in English

All facts and all sentence patterns below were written by hand for this
project. Output order is shuffled with a fixed seed, so running the script
reproduces the committed files byte for byte (stdlib only, Python 3.8+).
The other *.txt files in this directory are hand-written and are NOT
produced by this script.
"""

import os
import random

SEED = 20240601
HERE = os.path.dirname(os.path.abspath(__file__))

# kind: P=province, A=autonomous region, M=municipality, S=special administrative region, T=Taiwan
# (zh name, short zh name, abbreviation, kind, zh capital, zh region, feature a, feature b,
#  en name, en capital, en region)
PROVINCES = [
    (
        "北京市",
        "北京",
        "京",
        "M",
        "",
        "华北",
        "这里有故宫、天坛、颐和园和八达岭长城等名胜古迹。",
        "老北京的胡同和四合院，记录着这座城市几百年的生活气息。",
        "Beijing Municipality",
        "",
        "north",
    ),
    (
        "天津市",
        "天津",
        "津",
        "M",
        "",
        "华北",
        "海河穿城而过，天津港是我国北方重要的海港。",
        "天津人爱听相声，狗不理包子和煎饼果子远近闻名。",
        "Tianjin Municipality",
        "",
        "north",
    ),
    (
        "河北省",
        "河北",
        "冀",
        "P",
        "石家庄",
        "华北",
        "它环绕着北京和天津，境内有承德避暑山庄、赵州桥和山海关。",
        "河北平原是我国重要的小麦和棉花产区。",
        "Hebei Province",
        "Shijiazhuang",
        "north",
    ),
    (
        "山西省",
        "山西",
        "晋",
        "P",
        "太原",
        "华北",
        "平遥古城、云冈石窟和五台山都在这里。",
        "山西煤炭资源丰富，当地人擅长做各种面食，刀削面尤其有名。",
        "Shanxi Province",
        "Taiyuan",
        "north",
    ),
    (
        "内蒙古自治区",
        "内蒙古",
        "蒙",
        "A",
        "呼和浩特",
        "华北",
        "这里有辽阔的草原和沙漠，牧民每年夏天举行那达慕大会，比赛摔跤、赛马和射箭。",
        "畜牧业是当地的重要产业，奶茶和手把肉是传统美食。",
        "Inner Mongolia Autonomous Region",
        "Hohhot",
        "north",
    ),
    (
        "辽宁省",
        "辽宁",
        "辽",
        "P",
        "沈阳",
        "东北",
        "沈阳故宫是清朝入关前的皇宫，大连则是一座美丽的海滨城市。",
        "辽宁是我国老工业基地之一，钢铁和机械制造业历史悠久。",
        "Liaoning Province",
        "Shenyang",
        "northeast",
    ),
    (
        "吉林省",
        "吉林",
        "吉",
        "P",
        "长春",
        "东北",
        "长白山天池是一座火山口湖，冬天吉林市松花江畔的雾凇晶莹美丽。",
        "长春被称为汽车城，这里诞生了新中国第一批国产汽车。",
        "Jilin Province",
        "Changchun",
        "northeast",
    ),
    (
        "黑龙江省",
        "黑龙江",
        "黑",
        "P",
        "哈尔滨",
        "东北",
        "它是我国位置最北的省份，漠河一带冬季极为寒冷。",
        "哈尔滨的冰雪节闻名中外，黑土地上出产优质的大豆和大米。",
        "Heilongjiang Province",
        "Harbin",
        "northeast",
    ),
    (
        "上海市",
        "上海",
        "沪",
        "M",
        "",
        "华东",
        "它位于长江入海口，黄浦江畔的外滩汇集了许多风格各异的老建筑。",
        "上海是我国重要的经济、金融和航运中心。",
        "Shanghai Municipality",
        "",
        "east",
    ),
    (
        "江苏省",
        "江苏",
        "苏",
        "P",
        "南京",
        "华东",
        "苏州园林精巧雅致，太湖烟波浩渺，京杭大运河穿过全省。",
        "江苏河湖众多，自古就是富庶的鱼米之乡。",
        "Jiangsu Province",
        "Nanjing",
        "east",
    ),
    (
        "浙江省",
        "浙江",
        "浙",
        "P",
        "杭州",
        "华东",
        "杭州西湖、绍兴水乡和乌镇古镇吸引着大量游客。",
        "西湖龙井茶和丝绸是浙江的传统名产。",
        "Zhejiang Province",
        "Hangzhou",
        "east",
    ),
    (
        "安徽省",
        "安徽",
        "皖",
        "P",
        "合肥",
        "华东",
        "黄山以奇松、怪石、云海和温泉闻名，皖南村落保留着粉墙黛瓦的徽派建筑。",
        "宣纸、徽墨和歙砚都是安徽出产的文房用品。",
        "Anhui Province",
        "Hefei",
        "east",
    ),
    (
        "福建省",
        "福建",
        "闽",
        "P",
        "福州",
        "华东",
        "武夷山风景秀丽，闽西南的土楼像一座座圆形的城堡。",
        "福建盛产乌龙茶，它与台湾隔着台湾海峡相望。",
        "Fujian Province",
        "Fuzhou",
        "east",
    ),
    (
        "江西省",
        "江西",
        "赣",
        "P",
        "南昌",
        "华东",
        "庐山云雾缭绕，鄱阳湖是我国最大的淡水湖。",
        "景德镇烧制瓷器已有一千多年的历史，被誉为瓷都。",
        "Jiangxi Province",
        "Nanchang",
        "east",
    ),
    (
        "山东省",
        "山东",
        "鲁",
        "P",
        "济南",
        "华东",
        "泰山被称为五岳之首，曲阜是孔子的故乡。",
        "济南泉水众多，被称为泉城；青岛是著名的海滨城市。",
        "Shandong Province",
        "Jinan",
        "east",
    ),
    (
        "河南省",
        "河南",
        "豫",
        "P",
        "郑州",
        "华中",
        "洛阳龙门石窟、登封少林寺和安阳殷墟都是著名的历史遗迹。",
        "河南是我国的农业大省，洛阳的牡丹每年春天竞相开放。",
        "Henan Province",
        "Zhengzhou",
        "central",
    ),
    (
        "湖北省",
        "湖北",
        "鄂",
        "P",
        "武汉",
        "华中",
        "长江穿境而过，宜昌附近建有三峡水利枢纽工程。",
        "湖北湖泊众多，被称为千湖之省，武汉的黄鹤楼是江南名楼之一。",
        "Hubei Province",
        "Wuhan",
        "central",
    ),
    (
        "湖南省",
        "湖南",
        "湘",
        "P",
        "长沙",
        "华中",
        "张家界的石英砂岩峰林奇特壮观，岳阳楼俯瞰着浩瀚的洞庭湖。",
        "湘菜香辣浓郁，湘绣是我国四大名绣之一。",
        "Hunan Province",
        "Changsha",
        "central",
    ),
    (
        "广东省",
        "广东",
        "粤",
        "P",
        "广州",
        "华南",
        "珠江三角洲城市密集，深圳从一个小渔村发展成了现代化大都市。",
        "广东人喜欢喝早茶，粤菜讲究食材新鲜、口味清淡。",
        "Guangdong Province",
        "Guangzhou",
        "south",
    ),
    (
        "广西壮族自治区",
        "广西",
        "桂",
        "A",
        "南宁",
        "华南",
        "桂林山水甲天下，漓江两岸奇峰林立。",
        "壮族是我国人口最多的少数民族，每逢农历三月三，人们对唱山歌、欢度佳节。",
        "Guangxi Zhuang Autonomous Region",
        "Nanning",
        "south",
    ),
    (
        "海南省",
        "海南",
        "琼",
        "P",
        "海口",
        "华南",
        "它的主体是海南岛，属于热带季风气候，三亚的海湾沙白水清。",
        "海南盛产椰子、芒果和菠萝，冬季是北方游客的避寒胜地。",
        "Hainan Province",
        "Haikou",
        "south",
    ),
    (
        "重庆市",
        "重庆",
        "渝",
        "M",
        "",
        "西南",
        "长江与嘉陵江在这里交汇，城市依山而建，被称为山城。",
        "重庆火锅麻辣鲜香，夜晚的江边灯火辉煌。",
        "Chongqing Municipality",
        "",
        "southwest",
    ),
    (
        "四川省",
        "四川",
        "川",
        "P",
        "成都",
        "西南",
        "九寨沟的湖泊色彩斑斓，都江堰灌溉着肥沃的成都平原。",
        "四川是大熊猫的故乡，川菜以麻辣著称。",
        "Sichuan Province",
        "Chengdu",
        "southwest",
    ),
    (
        "贵州省",
        "贵州",
        "黔",
        "P",
        "贵阳",
        "西南",
        "黄果树瀑布气势磅礴，境内喀斯特地貌分布广泛。",
        "贵州居住着苗族、布依族、侗族等许多民族，民族节日丰富多彩。",
        "Guizhou Province",
        "Guiyang",
        "southwest",
    ),
    (
        "云南省",
        "云南",
        "云",
        "P",
        "昆明",
        "西南",
        "丽江古城、大理洱海和西双版纳的热带雨林各具风情。",
        "昆明四季如春，被称为春城；云南的动植物种类非常丰富。",
        "Yunnan Province",
        "Kunming",
        "southwest",
    ),
    (
        "西藏自治区",
        "西藏",
        "藏",
        "A",
        "拉萨",
        "西南",
        "它位于青藏高原，布达拉宫依山而建，雄伟壮观。",
        "世界最高峰珠穆朗玛峰耸立在中国和尼泊尔的边界上。",
        "Tibet Autonomous Region",
        "Lhasa",
        "southwest",
    ),
    (
        "陕西省",
        "陕西",
        "陕",
        "P",
        "西安",
        "西北",
        "西安古称长安，是多个王朝的都城，秦始皇陵兵马俑举世闻名。",
        "秦岭横贯陕西南部，北部是沟壑纵横的黄土高原。",
        "Shaanxi Province",
        "Xi'an",
        "northwest",
    ),
    (
        "甘肃省",
        "甘肃",
        "甘",
        "P",
        "兰州",
        "西北",
        "河西走廊是古代丝绸之路的要道，敦煌莫高窟保存着大量精美的壁画。",
        "黄河穿过兰州城区，兰州牛肉面是当地人最爱的早餐。",
        "Gansu Province",
        "Lanzhou",
        "northwest",
    ),
    (
        "青海省",
        "青海",
        "青",
        "P",
        "西宁",
        "西北",
        "青海湖是我国面积最大的咸水湖，每年夏天湖边开满金黄的油菜花。",
        "长江、黄河和澜沧江都发源于青海境内的三江源地区。",
        "Qinghai Province",
        "Xining",
        "northwest",
    ),
    (
        "宁夏回族自治区",
        "宁夏",
        "宁",
        "A",
        "银川",
        "西北",
        "黄河水灌溉着宁夏平原，使这里有了塞上江南的美称。",
        "宁夏出产的枸杞颇有名气，沙坡头的沙漠与黄河相映成趣。",
        "Ningxia Hui Autonomous Region",
        "Yinchuan",
        "northwest",
    ),
    (
        "新疆维吾尔自治区",
        "新疆",
        "新",
        "A",
        "乌鲁木齐",
        "西北",
        "它是我国面积最大的省级行政区，天山山脉横贯中部。",
        "吐鲁番的葡萄和哈密瓜香甜可口，因为这里日照充足、昼夜温差大。",
        "Xinjiang Uygur Autonomous Region",
        "Urumqi",
        "northwest",
    ),
    (
        "香港特别行政区",
        "香港",
        "港",
        "S",
        "",
        "华南",
        "维多利亚港两岸高楼林立，夜景十分迷人。",
        "香港是重要的国际金融中心，街头的茶餐厅和港式点心很受欢迎。",
        "Hong Kong Special Administrative Region",
        "",
        "south",
    ),
    (
        "澳门特别行政区",
        "澳门",
        "澳",
        "S",
        "",
        "华南",
        "澳门历史城区融合了中西方建筑风格，已被列入世界文化遗产名录。",
        "葡式蛋挞和杏仁饼是澳门有名的小吃。",
        "Macao Special Administrative Region",
        "",
        "south",
    ),
    (
        "台湾省",
        "台湾",
        "台",
        "T",
        "",
        "华东",
        "台湾岛是我国面积最大的岛屿，阿里山和日月潭是著名的风景区。",
        "台湾盛产水果，乌龙茶也很有名。",
        "Taiwan Province",
        "",
        "east",
    ),
]

# (zh name, symbol, atomic number, state zh, zh fact, en name, en fact)
ELEMENTS = [
    (
        "氢",
        "H",
        1,
        "气体",
        "它是最轻的元素，也是宇宙中含量最多的元素，可以用作燃料电池的燃料。",
        "hydrogen",
        "It is the lightest element and the most abundant one in the universe, and it can power fuel cells.",
    ),
    (
        "氦",
        "He",
        2,
        "气体",
        "氦气比空气轻而且不会燃烧，常用来填充气球和飞艇。",
        "helium",
        "Because it is lighter than air and does not burn, it is used to fill balloons and airships.",
    ),
    (
        "锂",
        "Li",
        3,
        "固体",
        "它是最轻的金属，是手机和电动汽车所用锂离子电池的关键原料。",
        "lithium",
        "It is the lightest metal and a key ingredient of the batteries in phones and electric cars.",
    ),
    (
        "碳",
        "C",
        6,
        "固体",
        "钻石和石墨都由碳原子构成，只是原子的排列方式不同。",
        "carbon",
        "Diamond and graphite are both pure carbon; only the arrangement of the atoms differs.",
    ),
    (
        "氮",
        "N",
        7,
        "气体",
        "氮气约占空气体积的百分之七十八，也是制造化肥的重要原料。",
        "nitrogen",
        "It makes up about 78 percent of the air by volume and is essential for making fertiliser.",
    ),
    (
        "氧",
        "O",
        8,
        "气体",
        "氧气约占空气体积的百分之二十一，动物呼吸和物质燃烧都离不开它。",
        "oxygen",
        "It makes up about 21 percent of the air, and both breathing and burning depend on it.",
    ),
    (
        "氟",
        "F",
        9,
        "气体",
        "它是化学性质最活泼的非金属元素，含氟牙膏有助于预防龋齿。",
        "fluorine",
        "It is the most reactive non-metal, and fluoride toothpaste helps prevent tooth decay.",
    ),
    (
        "氖",
        "Ne",
        10,
        "气体",
        "在通电的玻璃管中，氖气会发出明亮的红橙色光，霓虹灯因此得名。",
        "neon",
        "In an electrified glass tube it glows a bright reddish orange, which gave neon signs their name.",
    ),
    (
        "钠",
        "Na",
        11,
        "固体",
        "金属钠质地柔软，可以用小刀切开，遇水会剧烈反应；食盐的主要成分就是氯化钠。",
        "sodium",
        "The soft metal can be cut with a knife and reacts violently with water; table salt is sodium chloride.",
    ),
    (
        "镁",
        "Mg",
        12,
        "固体",
        "镁燃烧时发出耀眼的白光，镁合金又轻又结实。",
        "magnesium",
        "It burns with a dazzling white light, and its alloys are both light and strong.",
    ),
    (
        "铝",
        "Al",
        13,
        "固体",
        "它是地壳中含量最多的金属元素，常用于制造易拉罐、门窗和飞机。",
        "aluminium",
        "It is the most abundant metal in Earth's crust and is used for drink cans, window frames and aircraft.",
    ),
    (
        "硅",
        "Si",
        14,
        "固体",
        "它在地壳中的含量仅次于氧，是制造芯片和太阳能电池的基础材料。",
        "silicon",
        "It is second only to oxygen in abundance in Earth's crust and is the basis of computer chips and solar cells.",
    ),
    (
        "磷",
        "P",
        15,
        "固体",
        "磷是骨骼和牙齿的组成成分之一，也被用来制造化肥和火柴。",
        "phosphorus",
        "It is part of our bones and teeth and is used in fertilisers and matches.",
    ),
    (
        "硫",
        "S",
        16,
        "固体",
        "纯净的硫是黄色的晶体，古代黑火药的配方中就有硫磺。",
        "sulfur",
        "Pure sulfur forms yellow crystals, and it was one of the ingredients of early gunpowder.",
    ),
    (
        "氯",
        "Cl",
        17,
        "气体",
        "氯气呈黄绿色，有刺激性气味，含氯的消毒剂常用于自来水和游泳池的消毒。",
        "chlorine",
        "It is a yellow-green gas with a sharp smell, and chlorine compounds disinfect drinking water and swimming pools.",
    ),
    (
        "氩",
        "Ar",
        18,
        "气体",
        "它是空气中含量排第三的气体，常在焊接时用作保护气。",
        "argon",
        "It is the third most common gas in the air and is used as a shielding gas in welding.",
    ),
    (
        "钾",
        "K",
        19,
        "固体",
        "钾是植物生长必需的营养元素，香蕉和土豆中都含有较多的钾。",
        "potassium",
        "Plants need it to grow, and bananas and potatoes are good dietary sources.",
    ),
    (
        "钙",
        "Ca",
        20,
        "固体",
        "人体的骨骼和牙齿含有大量钙，牛奶和豆制品是补钙的好来源。",
        "calcium",
        "Our bones and teeth contain large amounts of it, and milk and tofu are good sources.",
    ),
    (
        "钛",
        "Ti",
        22,
        "固体",
        "钛强度高、耐腐蚀，被用于航空航天器材和人工关节。",
        "titanium",
        "It is strong and resists corrosion, so it is used in aircraft and artificial joints.",
    ),
    (
        "铁",
        "Fe",
        26,
        "固体",
        "铁是用量最大的金属，血液中的血红蛋白也需要铁来运输氧气。",
        "iron",
        "It is the most widely used metal, and the haemoglobin in our blood needs it to carry oxygen.",
    ),
    (
        "铜",
        "Cu",
        29,
        "固体",
        "铜呈紫红色，导电性能好，被大量用于制造电线。",
        "copper",
        "It has a reddish colour and conducts electricity well, so most electrical wiring is made of it.",
    ),
    (
        "锌",
        "Zn",
        30,
        "固体",
        "在钢铁表面镀一层锌可以防止生锈，锌也是人体必需的微量元素。",
        "zinc",
        "A coating of zinc protects steel from rust, and the body needs small amounts of it.",
    ),
    (
        "溴",
        "Br",
        35,
        "液体",
        "它是常温下唯一呈液态的非金属元素，颜色为深红棕色。",
        "bromine",
        "It is the only non-metal that is liquid at room temperature, with a deep reddish-brown colour.",
    ),
    (
        "银",
        "Ag",
        47,
        "固体",
        "银是导电性最好的金属，常被制成首饰和餐具。",
        "silver",
        "It conducts electricity better than any other metal and is made into jewellery and tableware.",
    ),
    (
        "锡",
        "Sn",
        50,
        "固体",
        "锡常用于焊接电子元件，镀锡的铁皮可以制作罐头盒。",
        "tin",
        "It is used in solder for electronics, and tin-plated steel is used to make food cans.",
    ),
    (
        "碘",
        "I",
        53,
        "固体",
        "人体缺碘可能引起甲状腺肿大，所以许多地方推广食用加碘盐。",
        "iodine",
        "A lack of it can enlarge the thyroid gland, which is why many countries add it to table salt.",
    ),
    (
        "铂",
        "Pt",
        78,
        "固体",
        "铂又叫白金，化学性质稳定，可用于首饰和汽车尾气的催化转化器。",
        "platinum",
        "It is very unreactive and is used in jewellery and in the catalytic converters of cars.",
    ),
    (
        "金",
        "Au",
        79,
        "固体",
        "金的化学性质十分稳定，延展性极好，可以被捶打成极薄的金箔。",
        "gold",
        "It hardly reacts with anything and is so malleable that it can be beaten into leaf thinner than paper.",
    ),
    (
        "汞",
        "Hg",
        80,
        "液体",
        "汞俗称水银，是常温下唯一呈液态的金属，它的蒸气有毒。",
        "mercury",
        "It is the only metal that is liquid at room temperature, and its vapour is poisonous.",
    ),
    (
        "铅",
        "Pb",
        82,
        "固体",
        "铅密度大、质地软，但对人体有毒，如今主要用于汽车的铅酸蓄电池。",
        "lead",
        "It is dense and soft but toxic, and today most of it goes into car batteries.",
    ),
    (
        "铀",
        "U",
        92,
        "固体",
        "铀是一种放射性元素，核电站利用铀原子核裂变释放的能量发电。",
        "uranium",
        "It is radioactive, and nuclear power stations generate electricity from the fission of its nuclei.",
    ),
]

ZH_STATE_EN = {"气体": "gas", "液体": "liquid", "固体": "solid"}


def period(z):
    for p, last in enumerate((2, 10, 18, 36, 54, 86, 118), start=1):
        if z <= last:
            return p
    raise ValueError(z)


def zh_status(kind, cap, short):
    if kind == "P":
        return f"省会是{cap}"
    if kind == "A":
        return f"首府是{cap}"
    if kind == "M":
        return "是中华人民共和国的首都" if short == "北京" else "是我国的直辖市之一"
    if kind == "S":
        return "是我国的特别行政区"
    return "是我国的一个省"


def zh_docs():
    docs = []
    for name, short, abbr, kind, cap, region, fa, fb, *_ in PROVINCES:
        st = zh_status(kind, cap, short)
        docs.append(f"{name}，简称“{abbr}”，位于我国{region}地区，{st}。{fa}{fb}")
        docs.append(f"问：{short}的简称是什么？答：{short}简称“{abbr}”。{fb}这个地方{st}。")
        docs.append(
            f"地理课上，老师请同学们介绍自己最想去的地方。一位同学说：“我最想去{short}。{fa}{fb}”老师笑着说，书上读到的只是一部分，有机会一定要亲自去看一看。"
        )
    for zh, sym, z, state, fact, *_ in ELEMENTS:
        docs.append(f"{zh}的元素符号是{sym}，原子序数为{z}，在常温常压下是{state}。{fact}")
        docs.append(
            f"问：原子序数为{z}的是哪种元素？答：是{zh}，元素符号写作{sym}。它的原子核里有{z}个质子，位于元素周期表的第{period(z)}周期。"
        )
    return docs


def en_docs():
    docs = []
    for zh, sym, z, state, _f, en, efact in ELEMENTS:
        st = ZH_STATE_EN[state]
        docs.append(
            f"{en.capitalize()} has the chemical symbol {sym} and atomic number {z}. At room temperature it is a {st}. {efact}"
        )
        docs.append(
            f"Question: which element has atomic number {z}? Answer: {en}, written {sym}. Each of its atoms has {z} protons in the nucleus, and it sits in period {period(z)} of the periodic table. Its Chinese name is {zh}."
        )
    for name, _short, abbr, _kind, _cap, _region, _fa, _fb, en, ecap, eregion in PROVINCES:
        if ecap:
            docs.append(
                f"{en} lies in the {eregion} of China, and its capital is {ecap}. In Chinese it is called {name}, and its one-character abbreviation is {abbr}."
            )
        else:
            docs.append(
                f"{en} lies in the {eregion} of China. In Chinese it is called {name}, and its one-character abbreviation is {abbr}."
            )
    return docs


def write(fname, docs):
    rng = random.Random(SEED)
    docs = list(docs)
    rng.shuffle(docs)
    with open(os.path.join(HERE, fname), "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(docs) + "\n")


def main():
    write("zh_generated_facts.txt", zh_docs())
    write("en_generated_facts.txt", en_docs())


if __name__ == "__main__":
    main()
